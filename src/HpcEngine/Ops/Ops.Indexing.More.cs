using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>Indexing of torch written over the gather / scatter primitives and strided views: diagonal and diag,
/// take_along_dim, scatter (assignment), index_add, index_copy, repeat_interleave.</summary>
public static partial class Ops
{
    /// <summary>torch.diagonal: the diagonal of the (dim1, dim2) planes, <paramref name="offset"/> above (positive) or
    /// below the main one, as a view; those two dims go and the diagonal becomes the last.</summary>
    public static Tensor Diagonal(Tensor x, int offset = 0, int dim1 = 0, int dim2 = 1)
    {
        ArgumentNullException.ThrowIfNull(x);
        x.CheckAlive();
        int a = Shapes.NormalizeDim("diagonal", dim1, x.Rank),
            b = Shapes.NormalizeDim("diagonal", dim2, x.Rank);
        if (a == b)
            throw new ArgumentException($"diagonal: dim1 and dim2 are both {a}; name two different dims", nameof(dim2));
        var r = DiagonalView(x, offset, a, b);
        if (!Recorder.Needs(x))
            return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "diagonal", [x], g =>
        {
            var z = Tensor.Empty(inShape, g.DType, g.Device, zeroed: true);
            using var region = DiagonalView(z, offset, a, b);
            CopyInto(region, g);
            return [z];
        });
    }

    private static Tensor DiagonalView(Tensor x, int offset, int a, int b)
    {
        int sa = x.Shape[a],
            sb = x.Shape[b];
        int length = Math.Max(0, offset >= 0 ? Math.Min(sa, sb - offset) : Math.Min(sa + offset, sb));
        int start = x.Offset;
        if (length > 0)
            start += offset >= 0 ? offset * x.Strides[b] : -offset * x.Strides[a];
        var shape = new List<int>();
        var strides = new List<int>();
        for (int k = 0; k < x.Rank; k++)
            if (k != a && k != b)
            {
                shape.Add(x.Shape[k]);
                strides.Add(x.Strides[k]);
            }
        shape.Add(length);
        strides.Add(x.Strides[a] + x.Strides[b]);
        return x.View(shape.ToArray(), strides.ToArray(), start);
    }

    /// <summary>torch.diag: a 1-D x becomes the square matrix with x on diagonal <paramref name="diagonal"/>; a 2-D x
    /// gives a copy of that diagonal.</summary>
    public static Tensor Diag(Tensor x, int diagonal = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank == 2)
        {
            using var d = Diagonal(x, diagonal);
            return Clone(d);
        }
        if (x.Rank != 1)
            throw new ShapeMismatchException($"diag: takes a 1-D or 2-D tensor, got shape {Shapes.Format(x.Shape)}");
        int m = x.Shape[0] + Math.Abs(diagonal);
        var r = Tensor.Empty([m, m], x.DType, x.Device, zeroed: true);
        using (var region = DiagonalView(r, diagonal, 0, 1))
            CopyStrided(x, region);
        if (!Recorder.Needs(x))
            return r;
        return Recorder.Record(r, "diag", [x], g =>
        {
            using var d = DiagonalView(g, diagonal, 0, 1);
            return [ContiguousNoGrad(d)];
        });
    }

    /// <summary>torch.take_along_dim: gather along <paramref name="dim"/> with x and the int64 indices broadcast over
    /// the other dims; without a dim, both are flattened.</summary>
    public static Tensor TakeAlongDim(Tensor x, Tensor indices, int? dim = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(indices);
        if (dim == null)
        {
            using var xf = Reshape(x, -1);
            using var i = ReshapeNoGrad(indices, [-1]);
            return Gather(xf, 0, i);
        }
        int d = Shapes.NormalizeDim("take_along_dim", dim.Value, x.Rank);
        if (indices.Rank != x.Rank)
            throw ShapeMismatchException.For("take_along_dim", "the indices must have the input's rank", x, indices);
        var xs = x.ShapeArray;
        var ixs = indices.ShapeArray;
        for (int k = 0; k < x.Rank; k++)
        {
            if (k == d)
                continue;
            int both = Shapes.Broadcast("take_along_dim", [x.Shape[k]], [indices.Shape[k]])[0];
            xs[k] = both;
            ixs[k] = both;
        }
        using var xe = Expand(x, xs);
        using var ie = ExpandNoGrad(indices, ixs);
        return Gather(xe, d, ie);
    }

    /// <summary>torch.scatter: a copy of x with src written at index along dim (which of duplicate targets wins is
    /// unspecified, as PyTorch). The gradient reaches x where nothing was written, and src through the
    /// index.</summary>
    public static Tensor Scatter(Tensor x, int dim, Tensor index, Tensor src)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(src);
        int d = CheckScatter("scatter", x, dim, index, src.ShapeArray);
        SameDevice("scatter", x, src);
        using var idx = CheckedIndices("scatter", index, x.Device, d, x.Shape[d]);
        var r = Clone(x.Detach());
        using (var sc = ToDType(src, x.DType, false))
            r.Backend.Scatter(r, d, idx, sc);
        if (!Recorder.Needs(x, src))
            return r;
        bool gx = x.NeedsGrad,
            gs = src.NeedsGrad;
        var srcShape = src.ShapeArray;
        return Recorder.Record(r, "scatter", [x, src], [idx], (g, s) =>
            [gx ? ScatterZeros(g, d, s[0]) : null, gs ? GatherInto(g, d, s[0], srcShape) : null]
        );
    }

    /// <summary>torch.scatter with a scalar: a copy of x with <paramref name="value"/> at index along dim.</summary>
    public static Tensor Scatter(Tensor x, int dim, Tensor index, double value)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(index);
        int d = CheckScatter("scatter", x, dim, index, index.ShapeArray);
        using var idx = CheckedIndices("scatter", index, x.Device, d, x.Shape[d]);
        var r = Clone(x.Detach());
        using (var v = ScalarsOn([], value, x.DType, x.Device))
        using (var spread = ExpandNoGrad(v, idx.ShapeArray))
            r.Backend.Scatter(r, d, idx, spread);
        if (!Recorder.Needs(x))
            return r;
        return Recorder.Record(r, "scatter", [x], [idx], (g, s) => [ScatterZeros(g, d, s[0])]);
    }

    /// <summary>torch.index_add: a copy of x with alpha · source[..., j, ...] added at x[..., index[j], ...] along dim
    /// (duplicates accumulate).</summary>
    public static Tensor IndexAdd(Tensor x, int dim, Tensor index, Tensor source, double alpha = 1)
    {
        ArgumentNullException.ThrowIfNull(source);
        int d = Shapes.NormalizeDim("index_add", dim, Math.Max(x.Rank, 1));
        using var spread = SpreadIndex("index_add", x, d, index, source);
        using var scaled = alpha == 1 ? Identity(source) : MulScalar(source, alpha);
        return ScatterAdd(x, d, spread, scaled);
    }

    /// <summary>torch.index_copy: a copy of x with source[..., j, ...] written at x[..., index[j], ...] along
    /// dim.</summary>
    public static Tensor IndexCopy(Tensor x, int dim, Tensor index, Tensor source)
    {
        ArgumentNullException.ThrowIfNull(source);
        int d = Shapes.NormalizeDim("index_copy", dim, Math.Max(x.Rank, 1));
        using var spread = SpreadIndex("index_copy", x, d, index, source);
        return Scatter(x, d, spread, source);
    }

    /// <summary>torch.repeat_interleave: every element along dim (of the flattened tensor without one) repeated
    /// <paramref name="repeats"/> times in place.</summary>
    public static Tensor RepeatInterleave(Tensor x, int repeats, int? dim = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentOutOfRangeException.ThrowIfNegative(repeats);
        int n = dim == null ? x.NumEl : x.Shape[Shapes.NormalizeDim("repeat_interleave", dim.Value, x.Rank)];
        return RepeatInterleave(x, Enumerable.Repeat((long)repeats, n).ToArray(), dim);
    }

    /// <summary>torch.repeat_interleave with a count per element: element i along dim repeated
    /// <c>repeats[i]</c> times.</summary>
    public static Tensor RepeatInterleave(Tensor x, long[] repeats, int? dim = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(repeats);
        using var source = dim == null ? Reshape(x, -1) : Identity(x);
        int d = dim == null ? 0 : Shapes.NormalizeDim("repeat_interleave", dim.Value, x.Rank);
        int n = source.Shape[d];
        if (repeats.Length != n)
            throw new ShapeMismatchException(
                $"repeat_interleave: {repeats.Length} repeat counts for {n} elements along dim {d}; give one per element"
            );
        var picks = new List<long>();
        for (int i = 0; i < n; i++)
        {
            if (repeats[i] < 0)
                throw new ArgumentOutOfRangeException(
                    nameof(repeats),
                    $"repeat_interleave: repeats[{i}] = {repeats[i]} is negative"
                );
            for (long k = 0; k < repeats[i]; k++)
                picks.Add(i);
        }
        using var host = Tensor.FromArray(picks.ToArray(), picks.Count);
        using var index = MoveNoGrad(host, x.Device);
        return IndexSelect(source, d, index);
    }

    /// <summary>Checks scatter's operands (index of x's rank, no larger than src, nor than x off dim) and returns the
    /// normalised dim.</summary>
    private static int CheckScatter(string op, Tensor x, int dim, Tensor index, int[] srcShape)
    {
        int d = Shapes.NormalizeDim(op, dim, x.Rank);
        if (index.Rank != x.Rank || srcShape.Length != x.Rank)
            throw new ShapeMismatchException(
                $"{op}: input {Shapes.Format(x.Shape)}, index {Shapes.Format(index.Shape)} and src "
                    + $"{Shapes.Format(srcShape)} must have the same rank"
            );
        for (int i = 0; i < x.Rank; i++)
            if (index.Shape[i] > srcShape[i] || (i != d && index.Shape[i] > x.Shape[i]))
                throw new ShapeMismatchException(
                    $"{op}: index {Shapes.Format(index.Shape)} must not be larger than src {Shapes.Format(srcShape)} "
                        + $"(any dim) or the input {Shapes.Format(x.Shape)} (dims other than {d})"
                );
        return d;
    }

    /// <summary>g with zeros where the scatter wrote (those elements of x were overwritten).</summary>
    private static Tensor ScatterZeros(Tensor g, int d, Tensor idx)
    {
        var r = Clone(g);
        using var z = ScalarsOn([], 0, g.DType, g.Device);
        using var spread = ExpandNoGrad(z, idx.ShapeArray);
        r.Backend.Scatter(r, d, idx, spread);
        return r;
    }

    /// <summary>g gathered through the index, placed in a zero tensor of src's shape (src may be larger than the
    /// index).</summary>
    private static Tensor GatherInto(Tensor g, int d, Tensor idx, int[] srcShape)
    {
        var picked = Gather(g, d, idx);
        if (picked.Shape.SequenceEqual(srcShape))
            return picked;
        using (picked)
        {
            var z = Tensor.Empty(srcShape, g.DType, g.Device, zeroed: true);
            var region = z.Alias();
            for (int k = 0; k < srcShape.Length; k++)
            {
                using var before = region;
                region = Narrow(before, k, 0, idx.Shape[k]);
            }
            using (region)
                CopyStrided(picked, region);
            return z;
        }
    }

    /// <summary>A 1-D index along d spread (stride 0) over source's other dims, for index_add / index_copy; checks
    /// that source matches x off d and has one slice per index.</summary>
    private static Tensor SpreadIndex(string op, Tensor x, int d, Tensor index, Tensor source)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(index);
        if (index.Rank > 1)
            throw new ShapeMismatchException($"{op}: the index must be 1-D, got shape {Shapes.Format(index.Shape)}");
        bool fits = source.Rank == x.Rank && source.Shape[d] == index.NumEl;
        for (int k = 0; fits && k < x.Rank; k++)
            fits = k == d || source.Shape[k] == x.Shape[k];
        if (!fits)
            throw ShapeMismatchException.For(
                op,
                $"source must match the input off dim {d} and have one slice per index along it",
                x,
                index,
                source
            );
        using var idx = IndexAsInt64(op, index);
        using var c = ContiguousNoGrad(idx);
        var strides = new int[source.Rank];
        strides[d] = 1;
        return c.View(source.ShapeArray, strides, c.Offset);
    }
}
