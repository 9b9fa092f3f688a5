using HpcEngine.Autograd;

namespace HpcEngine;

// Joins and splits: cat, stack, split, chunk.
public static partial class Ops
{
    /// <summary>Joins tensors along an existing dim; all other dims must match.</summary>
    public static Tensor Cat(IReadOnlyList<Tensor> xs, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(xs);
        if (xs.Count == 0)
            throw new ArgumentException("cat: no tensors given", nameof(xs));
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
        if (!Recorder.Needs([.. xs]))
            return r;
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
        if (xs.Count == 0)
            throw new ArgumentException("stack: no tensors given", nameof(xs));
        foreach (var x in xs)
            if (!x.Shape.SequenceEqual(xs[0].Shape))
                throw ShapeMismatchException.For("stack", "all tensors must have the same shape", [.. xs]);
        var us = xs.Select(x => Unsqueeze(x, dim < 0 ? dim + x.Rank + 1 : dim)).ToArray();
        try
        {
            return Cat(us, dim < 0 ? dim + xs[0].Rank + 1 : dim);
        }
        finally
        {
            foreach (var u in us)
                u.Dispose();
        }
    }

    /// <summary>Splits into pieces of <paramref name="size"/> along dim (the last may be smaller). Views.</summary>
    public static Tensor[] Split(Tensor x, int size, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        int d = Shapes.NormalizeDim("split", dim, x.Rank);
        var parts = new List<Tensor>();
        for (int s = 0; s < x.Shape[d]; s += size)
            parts.Add(Narrow(x, d, s, Math.Min(size, x.Shape[d] - s)));
        return parts.ToArray();
    }

    /// <summary>Splits into pieces of the given sizes along dim (sizes must add up to the dim). Views.</summary>
    public static Tensor[] Split(Tensor x, int[] sizes, int dim = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(sizes);
        int d = Shapes.NormalizeDim("split", dim, x.Rank);
        if (sizes.Sum() != x.Shape[d])
            throw new ShapeMismatchException(
                $"split: sizes {Shapes.Format(sizes)} add up to {sizes.Sum()}, not to dimension {d} of size "
                    + $"{x.Shape[d]}"
            );
        var parts = new Tensor[sizes.Length];
        int at = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            parts[i] = Narrow(x, d, at, sizes[i]);
            at += sizes[i];
        }
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
}
