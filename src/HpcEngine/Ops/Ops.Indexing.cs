using HpcEngine.Autograd;
using HpcEngine.Backends;

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

    /// <summary>The indices as int64 on <paramref name="device"/>, after checking every one is in [0, limit) on the
    /// host, before any kernel reads through them.</summary>
    private static Tensor CheckedIndices(string op, Tensor index, Device device, int dim, int limit)
    {
        if (index.DType is not (DType.Int64 or DType.Int32))
            throw new DTypeMismatchException($"{op}: indices must be int64 or int32, got {index.DType.TorchName()}");
        var ids = index.ToArray<long>();
        for (int i = 0; i < ids.Length; i++)
            if (ids[i] < 0 || ids[i] >= limit)
                throw new IndexOutOfRangeException(
                    $"{op}: index {ids[i]} (element {i} of the index) is out of range for dimension {dim} of size "
                        + $"{limit}"
                );
        if (index.Device == device && index.DType == DType.Int64)
            return index.Alias();
        if (index.Device == device)
            return ToDType(index, DType.Int64, false);
        using var host = Tensor.FromArray(ids, index.ShapeArray);
        return MoveNoGrad(host, device);
    }

    /// <summary>Picks entries of one dim by a 1-D index tensor: a gather through the index expanded (stride 0) over
    /// the other dims; the backward scatters the gradient back.</summary>
    public static Tensor IndexSelect(Tensor x, int dim, Tensor index)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(index);
        int d = Shapes.NormalizeDim("index_select", dim, x.Rank);
        if (index.Rank > 1)
            throw new ShapeMismatchException(
                $"index_select: the index must be 0-D or 1-D, got shape {Shapes.Format(index.Shape)}"
            );
        using var idx = CheckedIndices("index_select", index, x.Device, d, x.Shape[d]);
        var shape = x.ShapeArray;
        shape[d] = idx.NumEl;
        var strides = new int[shape.Length];
        strides[d] = idx.Rank == 0 ? 0 : idx.Strides[0];
        using var spread = idx.View(shape, strides, idx.Offset);
        var r = Tensor.Empty(shape, x.DType, x.Device);
        x.Backend.Gather(x, d, spread, r);
        if (!Recorder.Needs(x))
            return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "index_select", [x], [spread], (g, s) =>
        {
            using var gc = ContiguousNoGrad(g);
            var z = Tensor.Empty(inShape, g.DType, g.Device, zeroed: true);
            z.Backend.ScatterAdd(z, d, s[0], gc);
            return [z];
        });
    }

    /// <summary>dst += src in place (src, of dst's dtype, broadcasts to dst's shape; any strides). Not
    /// recorded.</summary>
    public static void AddInto(Tensor dst, Tensor src)
    {
        ArgumentNullException.ThrowIfNull(dst);
        ArgumentNullException.ThrowIfNull(src);
        SameDevice("add_", dst, src);
        using var sc = ToDType(src, dst.DType, false);
        using var se = Expanded(sc, dst.ShapeArray);
        if (dst.IsContiguous)
            dst.Backend.Binary(BinaryOp.Add, dst, se, dst);
        else
        {
            // The primitive writes contiguous results: add into a temporary, then copy it into dst's layout.
            using var sum = Tensor.Empty(dst.Shape, dst.DType, dst.Device);
            dst.Backend.Binary(BinaryOp.Add, dst, se, sum);
            CopyStrided(sum, dst);
        }
        dst.BumpVersion();
    }

    /// <summary>out[i][j] = x[i][index[i][j]] (for dim 1; likewise for any dim). index has x's rank.</summary>
    public static Tensor Gather(Tensor x, int dim, Tensor index)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(index);
        int d = Shapes.NormalizeDim("gather", dim, x.Rank);
        if (index.Rank != x.Rank)
            throw ShapeMismatchException.For("gather", "index must have the same rank as the input", x, index);
        for (int i = 0; i < x.Rank; i++)
            if (i != d && index.Shape[i] > x.Shape[i])
                throw ShapeMismatchException.For(
                    "gather",
                    $"index size must not exceed the input's in dimension {i}",
                    x,
                    index
                );
        using var idx = CheckedIndices("gather", index, x.Device, d, x.Shape[d]);
        var r = Tensor.Empty(index.ShapeArray, x.DType, x.Device);
        x.Backend.Gather(x, d, idx, r);
        if (!Recorder.Needs(x))
            return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "gather", [x], [idx], (g, s) =>
        {
            using var gc = ContiguousNoGrad(g);
            var z = Tensor.Empty(inShape, g.DType, g.Device, zeroed: true);
            z.Backend.ScatterAdd(z, d, s[0], gc);
            return [z];
        });
    }

    /// <summary>A copy of x with src added at index along dim, on x's device.</summary>
    internal static Tensor ScatterAddNoGrad(Tensor x, int dim, Tensor index, Tensor src)
    {
        SameDevice("scatter_add", x, src);
        using var idx = CheckedIndices("scatter_add", index, x.Device, dim, x.Shape[dim]);
        var r = Tensor.Empty(x.ShapeArray, x.DType, x.Device);
        CopyStrided(x, r);
        using var sc = ToDType(src, x.DType, false);
        r.Backend.ScatterAdd(r, dim, idx, sc);
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
            throw ShapeMismatchException.For(
                "scatter_add",
                "input, index and src must have the same rank",
                x,
                index,
                src
            );
        for (int i = 0; i < x.Rank; i++)
            if (index.Shape[i] > src.Shape[i] || (i != d && index.Shape[i] > x.Shape[i]))
                throw ShapeMismatchException.For(
                    "scatter_add",
                    $"index must not be larger than src (any dim) or the input (dims other than {d})",
                    x,
                    index,
                    src
                );
        var r = ScatterAddNoGrad(x, d, index, src);
        if (!Recorder.Needs(x, src))
            return r;
        bool gx = x.NeedsGrad,
            gs = src.NeedsGrad;
        return Recorder.Record(r, "scatter_add", [x, src], [index], (g, s) =>
            [gx ? g : null, gs ? Gather(g, d, s[0]) : null]
        );
    }

    /// <summary>One-hot encoding of int indices: shape [..., numClasses], dtype int64. The indices are checked on the
    /// host, then compared against 0..numClasses−1 on their device.</summary>
    public static Tensor OneHot(Tensor indices, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(numClasses);
        using var idx = CheckedIndices("one_hot", indices, indices.Device, 0, numClasses);
        using var col = Unsqueeze(idx, -1);
        using var classesHost = Tensor.Arange(0, numClasses, 1, DType.Int64);
        using var classes = MoveNoGrad(classesHost, idx.Device);
        using var hit = Eq(col, classes);
        return ToDType(hit, DType.Int64, true);
    }
}
