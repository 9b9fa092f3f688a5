using HpcEngine.Autograd;
using HpcEngine.Backends.Cpu;

namespace HpcEngine;

public static partial class Ops
{
    /// <summary>Resolves one -1 in a requested shape and checks the element count.</summary>
    private static int[] InferShape(string op, ReadOnlySpan<int> from, int[] to)
    {
        int n = Shapes.NumEl(from);
        var r = (int[])to.Clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < r.Length; i++)
        {
            if (r[i] == -1)
            {
                if (infer >= 0) throw new ShapeMismatchException($"{op}: only one dimension can be -1 (got {Shapes.Format(to)})");
                infer = i;
            }
            else if (r[i] < 0) throw new ShapeMismatchException($"{op}: invalid dimension {r[i]} in {Shapes.Format(to)}");
            else known *= r[i];
        }
        if (infer >= 0)
        {
            if (known == 0 || n % known != 0)
                throw new ShapeMismatchException($"{op}: shape {Shapes.Format(to)} is invalid for input of size {n} (shape {Shapes.Format(from)})");
            r[infer] = (int)(n / known);
        }
        else if (known != n)
            throw new ShapeMismatchException($"{op}: shape {Shapes.Format(to)} is invalid for input of size {n} (shape {Shapes.Format(from)})");
        return r;
    }

    /// <summary>Strides that view <paramref name="x"/> as <paramref name="shape"/> without copying, or null when the
    /// layout does not allow it (PyTorch's computeStride rule: each group of merged dims must be contiguous).</summary>
    private static int[]? ViewStrides(Tensor x, int[] shape)
    {
        if (x.IsContiguous) return Shapes.ContiguousStrides(shape);
        var oldShape = x.Shape;
        var oldStrides = x.Strides;
        var newStrides = new int[shape.Length];
        int viewD = shape.Length - 1;
        long chunkBase = oldStrides.Length > 0 ? oldStrides[^1] : 1;
        long tensorNumel = 1, viewNumel = 1;
        for (int tensorD = oldShape.Length - 1; tensorD >= 0; tensorD--)
        {
            tensorNumel *= oldShape[tensorD];
            if (tensorD == 0 || (oldShape[tensorD - 1] != 1 && oldStrides[tensorD - 1] != tensorNumel * chunkBase))
            {
                while (viewD >= 0 && (viewNumel < tensorNumel || shape[viewD] == 1))
                {
                    newStrides[viewD] = (int)(viewNumel * chunkBase);
                    viewNumel *= shape[viewD];
                    viewD--;
                }
                if (viewNumel != tensorNumel) return null;
                if (tensorD > 0)
                {
                    chunkBase = oldStrides[tensorD - 1];
                    tensorNumel = 1;
                    viewNumel = 1;
                }
            }
        }
        return viewD != -1 ? null : newStrides;
    }

    internal static Tensor ReshapeNoGrad(Tensor x, int[] shape)
    {
        x.CheckAlive();
        var s = InferShape("reshape", x.Shape, shape);
        var strides = ViewStrides(x, s);
        if (strides != null) return x.View(s, strides, x.Offset);
        using var c = x.Contiguous();
        return c.View(s, Shapes.ContiguousStrides(s), c.Offset);
    }

    /// <summary>Same elements in a new shape (one dim may be -1): a view when the layout allows, else a copy.</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        var r = ReshapeNoGrad(x, shape);
        if (!Recorder.Needs(x)) return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "reshape", [x], g => [ReshapeNoGrad(g, inShape)]);
    }

    /// <summary>A view in a new shape; throws when the layout needs a copy (use <see cref="Reshape"/>).</summary>
    public static Tensor View(Tensor x, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        var s = InferShape("view", x.Shape, shape);
        if (ViewStrides(x, s) == null)
            throw new ShapeMismatchException($"view: shape {Shapes.Format(s)} is not compatible with the input's size and strides (shape {Shapes.Format(x.Shape)}, strides {Shapes.Format(x.Strides)}); use Reshape, or Contiguous() first");
        return Reshape(x, s);
    }

    /// <summary>Flattens dims start..end into one.</summary>
    public static Tensor Flatten(Tensor x, int startDim = 0, int endDim = -1)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank == 0) return Reshape(x, 1);
        int s = Shapes.NormalizeDim("flatten", startDim, x.Rank), e = Shapes.NormalizeDim("flatten", endDim, x.Rank);
        if (s > e) throw new ArgumentException($"flatten: start dim {startDim} comes after end dim {endDim}", nameof(startDim));
        var shape = new List<int>();
        for (int i = 0; i < s; i++) shape.Add(x.Shape[i]);
        int m = 1;
        for (int i = s; i <= e; i++) m *= x.Shape[i];
        shape.Add(m);
        for (int i = e + 1; i < x.Rank; i++) shape.Add(x.Shape[i]);
        return Reshape(x, shape.ToArray());
    }

    internal static Tensor PermuteNoGrad(Tensor x, int[] perm)
    {
        x.CheckAlive();
        if (perm.Length != x.Rank)
            throw new ShapeMismatchException($"permute: {perm.Length} dims given for a tensor of rank {x.Rank}");
        var p = perm.Select(d => Shapes.NormalizeDim("permute", d, x.Rank)).ToArray();
        if (p.Distinct().Count() != p.Length) throw new ArgumentException($"permute: dims {Shapes.Format(perm)} repeat a dimension", nameof(perm));
        return x.View(p.Select(d => x.Shape[d]).ToArray(), p.Select(d => x.Strides[d]).ToArray(), x.Offset);
    }

    /// <summary>Reorders dims (a view).</summary>
    public static Tensor Permute(Tensor x, params int[] perm)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(perm);
        var r = PermuteNoGrad(x, perm);
        if (!Recorder.Needs(x)) return r;
        var p = perm.Select(d => Shapes.NormalizeDim("permute", d, x.Rank)).ToArray();
        var inv = new int[p.Length];
        for (int i = 0; i < p.Length; i++) inv[p[i]] = i;
        return Recorder.Record(r, "permute", [x], g => [PermuteNoGrad(g, inv)]);
    }

    /// <summary>Swaps two dims (a view).</summary>
    public static Tensor Transpose(Tensor x, int dim0, int dim1)
    {
        ArgumentNullException.ThrowIfNull(x);
        var p = Enumerable.Range(0, x.Rank).ToArray();
        int a = Shapes.NormalizeDim("transpose", dim0, x.Rank), b = Shapes.NormalizeDim("transpose", dim1, x.Rank);
        (p[a], p[b]) = (p[b], p[a]);
        return Permute(x, p);
    }

    /// <summary>Elements start..start+length-1 of one dim (a view).</summary>
    public static Tensor Narrow(Tensor x, int dim, int start, int length) => Slice(x, dim, start, start + length, 1);

    /// <summary>Elements start, start+step, ... below end of one dim (a view). Negative start/end count from the end.</summary>
    public static Tensor Slice(Tensor x, int dim, int start, int end, int step = 1)
    {
        ArgumentNullException.ThrowIfNull(x);
        x.CheckAlive();
        int d = Shapes.NormalizeDim("slice", dim, x.Rank);
        int size = x.Shape[d];
        if (step <= 0) throw new ArgumentOutOfRangeException(nameof(step), $"slice: step must be positive, got {step}");
        if (start < 0) start += size;
        if (end < 0) end += size;
        if (start < 0 || start > size || end < start || end > size)
            throw new ArgumentOutOfRangeException(nameof(start), $"slice: range [{start}, {end}) is outside dimension {d} of size {size} (shape {Shapes.Format(x.Shape)})");
        int len = (end - start + step - 1) / step;
        var shape = x.ShapeArray;
        var strides = x.Strides.ToArray();
        shape[d] = len;
        int offset = x.Offset + start * strides[d];
        strides[d] *= step;
        var r = x.View(shape, strides, offset);
        if (!Recorder.Needs(x)) return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "slice", [x], g =>
        {
            var z = Tensor.Empty(inShape, g.DType, g.Device, zeroed: true);
            using var region = Slice(z, d, start, end, step);
            CopyInto(region, g);
            return [z];
        });
    }

    /// <summary>The sub-tensor at <paramref name="index"/> of one dim, with that dim removed (a view).</summary>
    public static Tensor Select(Tensor x, int dim, int index)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = Shapes.NormalizeDim("select", dim, x.Rank);
        if (index < 0) index += x.Shape[d];
        using var n = Narrow(x, d, index, 1);
        return Squeeze(n, d);
    }

    internal static Tensor ExpandNoGrad(Tensor x, int[] shape)
    {
        var target = (int[])shape.Clone();
        int off = target.Length - x.Rank;
        if (off < 0) throw new ShapeMismatchException($"expand: cannot expand shape {Shapes.Format(x.Shape)} to fewer dims {Shapes.Format(shape)}");
        for (int i = 0; i < target.Length; i++)
        {
            if (target[i] == -1)
            {
                if (i < off) throw new ShapeMismatchException($"expand: -1 is not allowed for a new leading dim ({Shapes.Format(shape)})");
                target[i] = x.Shape[i - off];
            }
            if (i >= off && x.Shape[i - off] != 1 && x.Shape[i - off] != target[i])
                throw new ShapeMismatchException($"expand: shape {Shapes.Format(x.Shape)} cannot expand to {Shapes.Format(shape)} (dim {i}: only size-1 dims expand)");
        }
        return x.View(target, Shapes.BroadcastStrides(x.Shape, x.Strides, target), x.Offset);
    }

    /// <summary>Broadcasts size-1 dims to <paramref name="shape"/> (a view; no copy).</summary>
    public static Tensor Expand(Tensor x, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(shape);
        var r = ExpandNoGrad(x, shape);
        if (!Recorder.Needs(x)) return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "expand", [x], g => [SumTo(g, inShape)]);
    }

    /// <summary>Removes size-1 dims (all, or just <paramref name="dim"/>).</summary>
    public static Tensor Squeeze(Tensor x, int? dim = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        var shape = new List<int>();
        int d = dim.HasValue ? Shapes.NormalizeDim("squeeze", dim.Value, x.Rank) : -1;
        for (int i = 0; i < x.Rank; i++)
            if (!(x.Shape[i] == 1 && (d < 0 || d == i))) shape.Add(x.Shape[i]);
        return Reshape(x, shape.ToArray());
    }

    /// <summary>Inserts a size-1 dim at <paramref name="dim"/>.</summary>
    public static Tensor Unsqueeze(Tensor x, int dim)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = Shapes.NormalizeDim("unsqueeze", dim, x.Rank + 1);
        var shape = x.ShapeArray.ToList();
        shape.Insert(d, 1);
        return Reshape(x, shape.ToArray());
    }

    /// <summary>Joins tensors along an existing dim; all other dims must match.</summary>
    public static Tensor Cat(IReadOnlyList<Tensor> xs, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(xs);
        if (xs.Count == 0) throw new ArgumentException("cat: no tensors given", nameof(xs));
        var first = xs[0];
        int d = Shapes.NormalizeDim("cat", dim, first.Rank);
        var dtype = first.DType;
        int total = 0;
        foreach (var x in xs)
        {
            SameDevice("cat", first, x);
            if (x.Rank != first.Rank)
                throw ShapeMismatchException.For("cat", "all tensors must have the same rank", [.. xs]);
            for (int i = 0; i < x.Rank; i++)
                if (i != d && x.Shape[i] != first.Shape[i])
                    throw ShapeMismatchException.For("cat", $"sizes must match except in dimension {d}", [.. xs]);
            total += x.Shape[d];
            dtype = DTypes.Promote(dtype, x.DType);
        }
        var shape = first.ShapeArray;
        shape[d] = total;
        var r = Tensor.Empty(shape, dtype, first.Device);
        int at = 0;
        var sizes = new int[xs.Count];
        for (int k = 0; k < xs.Count; k++)
        {
            sizes[k] = xs[k].Shape[d];
            using var region = Narrow(r, d, at, sizes[k]);
            CopyInto(region, xs[k]);
            at += sizes[k];
        }
        if (!Recorder.Needs([.. xs])) return r;
        return Recorder.Record(r, "cat", [.. xs], g =>
        {
            var grads = new Tensor?[sizes.Length];
            int o = 0;
            for (int k = 0; k < sizes.Length; k++)
            {
                grads[k] = g.View(NarrowShape(g, d, sizes[k]), g.Strides.ToArray(), g.Offset + o * g.Strides[d]);
                o += sizes[k];
            }
            return grads;
        });
    }

    private static int[] NarrowShape(Tensor g, int d, int len)
    {
        var s = g.ShapeArray;
        s[d] = len;
        return s;
    }

    /// <summary>Joins same-shaped tensors along a new dim.</summary>
    public static Tensor Stack(IReadOnlyList<Tensor> xs, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(xs);
        if (xs.Count == 0) throw new ArgumentException("stack: no tensors given", nameof(xs));
        foreach (var x in xs)
            if (!x.Shape.SequenceEqual(xs[0].Shape))
                throw ShapeMismatchException.For("stack", "all tensors must have the same shape", [.. xs]);
        var us = xs.Select(x => Unsqueeze(x, dim < 0 ? dim + x.Rank + 1 : dim)).ToArray();
        try { return Cat(us, dim < 0 ? dim + xs[0].Rank + 1 : dim); }
        finally { foreach (var u in us) u.Dispose(); }
    }

    /// <summary>Splits into pieces of <paramref name="size"/> along dim (the last may be smaller). Views.</summary>
    public static Tensor[] Split(Tensor x, int size, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        int d = Shapes.NormalizeDim("split", dim, x.Rank);
        var parts = new List<Tensor>();
        for (int s = 0; s < x.Shape[d]; s += size) parts.Add(Narrow(x, d, s, Math.Min(size, x.Shape[d] - s)));
        return parts.ToArray();
    }

    /// <summary>Splits into pieces of the given sizes along dim (sizes must add up to the dim). Views.</summary>
    public static Tensor[] Split(Tensor x, int[] sizes, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(sizes);
        int d = Shapes.NormalizeDim("split", dim, x.Rank);
        if (sizes.Sum() != x.Shape[d])
            throw new ShapeMismatchException($"split: sizes {Shapes.Format(sizes)} add up to {sizes.Sum()}, not to dimension {d} of size {x.Shape[d]}");
        var parts = new Tensor[sizes.Length];
        int at = 0;
        for (int i = 0; i < sizes.Length; i++) { parts[i] = Narrow(x, d, at, sizes[i]); at += sizes[i]; }
        return parts;
    }

    /// <summary>Splits into <paramref name="chunks"/> nearly equal pieces along dim.</summary>
    public static Tensor[] Chunk(Tensor x, int chunks, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunks);
        int d = Shapes.NormalizeDim("chunk", dim, x.Rank);
        int size = Math.Max(1, (x.Shape[d] + chunks - 1) / chunks);
        return Split(x, size, d);
    }

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
