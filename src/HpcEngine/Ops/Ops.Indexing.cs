using HpcEngine.Autograd;
using HpcEngine.Backends.Cpu;

namespace HpcEngine;

// Indexing: index-select, gather, scatter-add, one-hot.
public static partial class Ops
{
    private static Tensor IndexAsInt64(string op, Tensor index)
    {
        if (index.DType is not (DType.Int64 or DType.Int32))
            throw new DTypeMismatchException($"{op}: indices must be int64 or int32, got {index.DType.TorchName()}");
        return ToDType(index, DType.Int64, false);
    }

    /// <summary>Picks entries of one dim by a 1-D index tensor.</summary>
    public static Tensor IndexSelect(Tensor x, int dim, Tensor index)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(index);
        int d = Shapes.NormalizeDim("index_select", dim, x.Rank);
        if (index.Rank > 1) throw new ShapeMismatchException($"index_select: the index must be 0-D or 1-D, got shape {Shapes.Format(index.Shape)}");
        if (!x.IsCpu) return DeviceIndexSelect(x, d, index);
        using var idx = IndexAsInt64("index_select", index);
        var ids = idx.ToArray<long>();
        var shape = x.ShapeArray;
        shape[d] = ids.Length;
        var r = Tensor.Empty(shape, x.DType);
        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] < 0 || ids[i] >= x.Shape[d])
                throw new IndexOutOfRangeException($"index_select: index {ids[i]} at position {i} is out of range for dimension {d} of size {x.Shape[d]}");
            using var src = x.View(NarrowShape(x, d, 1), x.Strides.ToArray(), x.Offset + (int)ids[i] * x.Strides[d]);
            using var dst = r.View(NarrowShape(r, d, 1), r.Strides.ToArray(), r.Offset + i * r.Strides[d]);
            CastKernels.CopyStrided(src, dst);
        }
        if (!Recorder.Needs(x)) return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "index_select", [x], g =>
        {
            var z = Tensor.Zeros(inShape, g.DType);
            for (int i = 0; i < ids.Length; i++)
            {
                using var dst = z.View(NarrowShape(z, d, 1), z.Strides.ToArray(), z.Offset + (int)ids[i] * z.Strides[d]);
                using var src = g.View(NarrowShape(g, d, 1), g.Strides.ToArray(), g.Offset + i * g.Strides[d]);
                AddInto(dst, src);
            }
            return [z];
        });
    }

    /// <summary>dst += src in place (src, of dst's dtype, broadcasts to dst's shape; any strides). Not recorded.</summary>
    public static void AddInto(Tensor dst, Tensor src)
    {
        if (!dst.IsCpu)
        {
            DeviceAddInto(dst, src);
            dst.BumpVersion();
            return;
        }
        switch (dst.DType)
        {
            case DType.Float32: BinaryKernels.Run<float>(BinaryOp.Add, dst, src, dst); break;
            case DType.Float64: BinaryKernels.Run<double>(BinaryOp.Add, dst, src, dst); break;
            case DType.Int64: BinaryKernels.Run<long>(BinaryOp.Add, dst, src, dst); break;
            case DType.Int32: BinaryKernels.Run<int>(BinaryOp.Add, dst, src, dst); break;
            default: throw Unsupported("add_", dst.DType, "float32, float64, int32 or int64");
        }
        dst.BumpVersion();
    }

    /// <summary>out[i][j] = x[i][index[i][j]] (for dim 1; likewise for any dim). index has x's rank.</summary>
    public static Tensor Gather(Tensor x, int dim, Tensor index)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(index);
        int d = Shapes.NormalizeDim("gather", dim, x.Rank);
        if (index.Rank != x.Rank) throw ShapeMismatchException.For("gather", "index must have the same rank as the input", x, index);
        for (int i = 0; i < x.Rank; i++)
            if (i != d && index.Shape[i] > x.Shape[i])
                throw ShapeMismatchException.For("gather", $"index size must not exceed the input's in dimension {i}", x, index);
        if (!x.IsCpu)
        {
            if (index.DType is not (DType.Int64 or DType.Int32)) throw new DTypeMismatchException($"gather: indices must be int64 or int32, got {index.DType.TorchName()}");
            return DeviceGather(x, d, index);
        }
        using var idx = IndexAsInt64("gather", index);
        var r = Tensor.Empty(index.Shape, x.DType);
        IndexKernels.Gather(x, d, idx, r);
        if (!Recorder.Needs(x)) return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "gather", [x], [idx], (g, s) =>
        {
            using var z = Tensor.Zeros(inShape, g.DType);
            return [ScatterAddNoGrad(z, d, s[0], g)];
        });
    }

    internal static Tensor ScatterAddNoGrad(Tensor x, int dim, Tensor index, Tensor src)
    {
        if (!x.IsCpu)
        {
            if (index.DType is not (DType.Int64 or DType.Int32)) throw new DTypeMismatchException($"scatter_add: indices must be int64 or int32, got {index.DType.TorchName()}");
            return DeviceScatterAdd(x, dim, index, src);
        }
        using var idx = IndexAsInt64("scatter_add", index);
        var r = x.Clone();
        using var sc = ToDType(src, x.DType, false);
        switch (x.DType)
        {
            case DType.Float32: IndexKernels.ScatterAdd<float>(r, dim, idx, sc); break;
            case DType.Float64: IndexKernels.ScatterAdd<double>(r, dim, idx, sc); break;
            case DType.Int64: IndexKernels.ScatterAdd<long>(r, dim, idx, sc); break;
            case DType.Int32: IndexKernels.ScatterAdd<int>(r, dim, idx, sc); break;
            default: throw Unsupported("scatter_add", x.DType, "float32, float64, int32 or int64");
        }
        return r;
    }

    /// <summary>A copy of x with src added at the positions index names along dim (duplicates accumulate).</summary>
    public static Tensor ScatterAdd(Tensor x, int dim, Tensor index, Tensor src)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(src);
        int d = Shapes.NormalizeDim("scatter_add", dim, x.Rank);
        if (index.Rank != x.Rank || src.Rank != x.Rank)
            throw ShapeMismatchException.For("scatter_add", "input, index and src must have the same rank", x, index, src);
        for (int i = 0; i < x.Rank; i++)
            if (index.Shape[i] > src.Shape[i] || (i != d && index.Shape[i] > x.Shape[i]))
                throw ShapeMismatchException.For("scatter_add", $"index must not be larger than src (any dim) or the input (dims other than {d})", x, index, src);
        var r = ScatterAddNoGrad(x, d, index, src);
        if (!Recorder.Needs(x, src)) return r;
        bool gx = x.NeedsGrad, gs = src.NeedsGrad;
        return Recorder.Record(r, "scatter_add", [x, src], [index], (g, s) => [gx ? g : null, gs ? Gather(g, d, s[0]) : null]);
    }

    /// <summary>One-hot encoding of int indices: shape [..., numClasses], dtype int64.</summary>
    public static Tensor OneHot(Tensor indices, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numClasses);
        using var idx = IndexAsInt64("one_hot", indices);
        using var col = Unsqueeze(idx, -1);
        if (!idx.IsCpu)
        {
            // On a device: indices checked on the host, then one comparison against 0..numClasses−1 and a cast.
            using var checkedIdx = DeviceIndices("one_hot", idx, idx.Device, 0, numClasses);
            using var checkedCol = Unsqueeze(checkedIdx, -1);
            using var classesHost = Tensor.Arange(0, numClasses, 1, DType.Int64);
            using var classes = MoveNoGrad(classesHost, idx.Device);
            using var hit = Eq(checkedCol, classes);
            return ToDType(hit, DType.Int64, true);
        }
        var shape = indices.ShapeArray.Append(numClasses).ToArray();
        using var z = Tensor.Zeros(shape, DType.Int64);
        using var ones = Tensor.Ones(col.ShapeArray, DType.Int64);
        return ScatterAddNoGrad(z, shape.Length - 1, col, ones);
    }
}
