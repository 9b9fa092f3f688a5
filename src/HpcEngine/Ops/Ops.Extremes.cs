using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>Max, min, argmax and argmin: the reductions that pick an element rather than combine them.</summary>
public static partial class Ops
{
    /// <summary>Maximum over one dim with the int64 index of the first maximum.</summary>
    public static (Tensor Values, Tensor Indices) Max(Tensor x, int dim, bool keepDim = false) =>
        MaxMin(ReduceKind.Max, "max", x, dim, keepDim);

    /// <summary>Minimum over one dim with the int64 index of the first minimum.</summary>
    public static (Tensor Values, Tensor Indices) Min(Tensor x, int dim, bool keepDim = false) =>
        MaxMin(ReduceKind.Min, "min", x, dim, keepDim);

    /// <summary>Largest element (gradient split evenly over ties, as PyTorch's amax).</summary>
    public static Tensor Max(Tensor x) => Extreme(ReduceKind.Max, "max", x);

    /// <summary>Smallest element.</summary>
    public static Tensor Min(Tensor x) => Extreme(ReduceKind.Min, "min", x);

    /// <summary>Index of the largest value along <paramref name="dim"/> (int64).</summary>
    public static Tensor ArgMax(Tensor x, int dim, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (v, i) = ReduceNoGrad(
            ReduceKind.ArgMax,
            "argmax",
            x,
            [Shapes.NormalizeDim("argmax", dim, x.Rank)],
            keepDim
        );
        v.Dispose();
        return i!;
    }

    /// <summary>Index of the smallest value along <paramref name="dim"/> (int64).</summary>
    public static Tensor ArgMin(Tensor x, int dim, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (v, i) = ReduceNoGrad(
            ReduceKind.ArgMin,
            "argmin",
            x,
            [Shapes.NormalizeDim("argmin", dim, x.Rank)],
            keepDim
        );
        v.Dispose();
        return i!;
    }

    private static (Tensor, Tensor) MaxMin(ReduceKind op, string name, Tensor x, int dim, bool keepDim)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = Shapes.NormalizeDim(name, dim, x.Rank);
        var (v, idx) = ReduceNoGrad(op, name, x, [d], keepDim);
        if (Recorder.Needs(x))
        {
            var shape = x.ShapeArray;
            Recorder.Record(v, name, [x], [idx!], (g, s) =>
            {
                using var gi = Unreduce(g, shape, [d], keepDim);
                using var ii = Unreduce(s[0], shape, [d], keepDim);
                using var z = Tensor.Empty(shape, g.DType, g.Device, zeroed: true);
                return [ScatterAddNoGrad(z, d, ii, gi)];
            });
        }
        return (v, idx!);
    }

    private static Tensor Extreme(ReduceKind op, string name, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.NumEl == 0)
            throw new ShapeMismatchException(
                $"{name}: the tensor is empty (shape {Shapes.Format(x.Shape)}); there is no {name}imum"
            );
        var all = Enumerable.Range(0, x.Rank).ToArray();
        var (v, idx) = ReduceNoGrad(op, name, x, all, false);
        idx?.Dispose();
        if (!Recorder.Needs(x))
            return v;
        return Recorder.Record(v, name, [x], [x, v], (g, s) =>
        {
            using var hit = Eq(s[0], s[1]);
            using var m = To(hit, g.DType);
            using var cnt = Sum(m);
            using var w = Div(m, cnt);
            return [Mul(w, g)];
        });
    }
}
