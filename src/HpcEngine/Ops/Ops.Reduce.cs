using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>The reductions an op can ask for: sums and extremes are backend primitives, the rest composites.</summary>
internal enum ReduceKind
{
    Sum,
    Mean,
    Max,
    Min,
    ArgMax,
    ArgMin,
    Var,
    LogSumExp,
    Norm1,
    Norm2,
    NormInf,
}

public static partial class Ops
{
    /// <summary>Normalises the reduce dims (null or empty = all), sorted and unique.</summary>
    internal static int[] ReduceDims(string op, int[]? dims, int rank)
    {
        if (dims == null || dims.Length == 0)
            return Enumerable.Range(0, rank).ToArray();
        var r = dims.Select(d => Shapes.NormalizeDim(op, d, rank)).Distinct().Order().ToArray();
        if (r.Length != dims.Length)
            throw new ArgumentException($"{op}: dims {Shapes.Format(dims)} repeat a dimension", nameof(dims));
        return r;
    }

    private static int[] ReducedShape(ReadOnlySpan<int> shape, int[] dims, bool keepDim)
    {
        var r = new List<int>();
        for (int i = 0; i < shape.Length; i++)
        {
            if (Array.IndexOf(dims, i) < 0)
                r.Add(shape[i]);
            else if (keepDim)
                r.Add(1);
        }
        return r.ToArray();
    }

    /// <summary>How a reduction over <paramref name="dims"/> lays x out: the result's shape, the kept dims, and x as
    /// [outer, inner] rows once the kept dims come first.</summary>
    private static (int[] OutShape, int[] Kept, int Outer, int Inner) ReduceLayout(Tensor x, int[] dims, bool keepDim)
    {
        var kept = Enumerable.Range(0, x.Rank).Where(i => Array.IndexOf(dims, i) < 0).ToArray();
        int outer = 1,
            inner = 1;
        foreach (int k in kept)
            outer *= x.Shape[k];
        foreach (int d in dims)
            inner *= x.Shape[d];
        return (ReducedShape(x.Shape, dims, keepDim), kept, outer, inner);
    }

    /// <summary>Computes a reduction without recording: returns the values (and int64 indices for max/min). Sums and
    /// extremes are the backends' primitives; variance, log-sum-exp and the norms are composed from them.</summary>
    private static (Tensor Values, Tensor? Indices) ReduceNoGrad(
        ReduceKind op,
        string name,
        Tensor x,
        int[] dims,
        bool keepDim,
        double correction = 1
    )
    {
        x.CheckAlive();
        var (_, _, _, inner) = ReduceLayout(x, dims, keepDim);
        bool extreme = op is ReduceKind.Max or ReduceKind.Min or ReduceKind.ArgMax or ReduceKind.ArgMin;
        if (extreme && inner == 0)
            throw new ShapeMismatchException(
                $"{name}: cannot reduce over an empty dimension (shape {Shapes.Format(x.Shape)}, dims "
                    + $"{Shapes.Format(dims)})"
            );
        if (!x.DType.IsFloating())
        {
            // Integer sums are exact in int64; everything else goes through float64 (max/min convert back).
            if (op == ReduceKind.Sum)
            {
                using var xl = ToDType(x, DType.Int64, false);
                return (SumOver(xl, dims, keepDim, 1), null);
            }
            using var xf = ToDType(x, DType.Float64, false);
            var (v, idx) = ReduceNoGrad(op, name, xf, dims, keepDim, correction);
            if (op is ReduceKind.Max or ReduceKind.Min)
            {
                using (v)
                    return (ToDType(v, x.DType, false), idx);
            }
            return (v, idx);
        }
        var compute = x.DType.ComputeType();
        if (compute != x.DType)
        {
            // 16-bit floats reduce in float32 and the values are rounded back (indices stay int64).
            using var wide = ToDType(x, compute, false);
            var (v32, i) = ReduceNoGrad(op, name, wide, dims, keepDim, correction);
            using (v32)
                return (op is ReduceKind.ArgMax or ReduceKind.ArgMin ? v32.Alias() : ToDType(v32, x.DType, false), i);
        }
        return op switch
        {
            ReduceKind.Sum => (SumOver(x, dims, keepDim, 1), null),
            // the mean of nothing is NaN
            ReduceKind.Mean => (SumOver(x, dims, keepDim, inner == 0 ? double.NaN : 1.0 / inner), null),
            _ when extreme => ExtremeOver(op is ReduceKind.Max or ReduceKind.ArgMax, x, dims, keepDim),
            _ => (ComposedReduce(op, x, dims, keepDim, inner, correction), null),
        };
    }

    /// <summary>scale · Σ over <paramref name="dims"/>. When the reduced dims are the leading ones of a contiguous
    /// tensor (the bias gradient) whole rows are added without a transpose; otherwise the kept dims are moved first
    /// and each row is summed.</summary>
    private static Tensor SumOver(Tensor x, int[] dims, bool keepDim, double scale)
    {
        var (outShape, kept, outer, reduced) = ReduceLayout(x, dims, keepDim);
        var r = Tensor.Empty(outShape, x.DType, x.Device);
        bool leading = x.IsContiguous && dims.Length < x.Rank && dims.SequenceEqual(Enumerable.Range(0, dims.Length));
        if (leading)
            x.Backend.Sum(x, 1, reduced, outer, r, scale);
        else
        {
            using var arranged = Arrange(x, kept, dims);
            x.Backend.Sum(arranged, outer, reduced, 1, r, scale);
        }
        return r;
    }

    /// <summary>Max/min (with int64 indices) over <paramref name="dims"/>: the reduced dims are moved last, then each
    /// row gives its extreme and the index of its first occurrence.</summary>
    private static (Tensor Values, Tensor? Indices) ExtremeOver(bool max, Tensor x, int[] dims, bool keepDim)
    {
        var (outShape, kept, outer, inner) = ReduceLayout(x, dims, keepDim);
        using var arranged = Arrange(x, kept, dims);
        var values = Tensor.Empty(outShape, x.DType, x.Device);
        var indices = Tensor.Empty(outShape, DType.Int64, x.Device);
        x.Backend.Extreme(arranged, outer, inner, values, indices, max);
        return (values, indices);
    }

    /// <summary>Variance, log-sum-exp and the norms, composed from sums, extremes and elementwise ops (so every
    /// backend has them). Not recorded: the callers record their own backward.</summary>
    private static Tensor ComposedReduce(
        ReduceKind op,
        Tensor x,
        int[] dims,
        bool keepDim,
        int count,
        double correction
    )
    {
        using var noGrad = GradMode.NoGrad();
        switch (op)
        {
            case ReduceKind.Norm2:
            {
                using var sq = Mul(x, x);
                using var s = Sum(sq, dims, keepDim);
                return Sqrt(s);
            }
            case ReduceKind.Norm1:
            {
                using var a = Abs(x);
                return Sum(a, dims, keepDim);
            }
            case ReduceKind.NormInf:
            {
                if (count == 0)
                    return Tensor.Empty(ReducedShape(x.Shape, dims, keepDim), x.DType, x.Device, zeroed: true);
                using var a = Abs(x);
                var (v, i) = ExtremeOver(true, a, dims, keepDim);
                i?.Dispose();
                return v;
            }
            case ReduceKind.Var:
            {
                using var mean = Mean(x, dims, keepDim: true);
                using var c = Sub(x, mean);
                using var sq = Mul(c, c);
                using var s = Sum(sq, dims, keepDim);
                return MulScalar(s, 1.0 / Math.Max(count - correction, 0));
            }
            case ReduceKind.LogSumExp:
            {
                if (count == 0)
                    return ScalarsOn(ReducedShape(x.Shape, dims, keepDim), double.NegativeInfinity, x.DType, x.Device);
                // m + log Σ exp(x − m), and m itself where it is infinite (all −inf, or a +inf).
                var (m, i) = ExtremeOver(true, x, dims, keepDim: true);
                i?.Dispose();
                using (m)
                {
                    using var am = Abs(m);
                    using var inf = Tensor.Scalar(double.PositiveInfinity);
                    using var finite = Lt(am, inf);
                    using var zero = Tensor.Scalar(0);
                    using var shift = Where(finite, m, zero);
                    using var d = Sub(x, shift);
                    using var e = Exp(d);
                    using var s = Sum(e, dims, keepDim);
                    using var l = Log(s);
                    using var shiftOut = keepDim
                        ? shift.Alias()
                        : ReshapeNoGrad(shift, ReducedShape(x.Shape, dims, false));
                    using var r = Add(l, shiftOut);
                    using var mOut = keepDim ? m.Alias() : ReshapeNoGrad(m, ReducedShape(x.Shape, dims, false));
                    using var finiteOut = keepDim
                        ? finite.Alias()
                        : ReshapeNoGrad(finite, ReducedShape(x.Shape, dims, false));
                    return Where(finiteOut, r, mOut);
                }
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "not a composed reduction");
        }
    }

    private static Tensor ScalarsOn(int[] shape, double value, DType dtype, Device device)
    {
        var t = Tensor.Empty(shape, dtype, device);
        t.FillRaw(value);
        return t;
    }

    /// <summary>A contiguous view or copy of x with the kept dims first and the reduced dims last.</summary>
    private static Tensor Arrange(Tensor x, int[] kept, int[] dims)
    {
        var perm = kept.Concat(dims).ToArray();
        using var p = PermuteNoGrad(x, perm);
        return p.IsContiguous ? p.Alias() : p.Contiguous();
    }

    /// <summary>Re-inserts reduced dims (size 1) so a reduced gradient broadcasts against the input.</summary>
    private static Tensor Unreduce(Tensor g, int[] inShape, int[] dims, bool keepDim)
    {
        if (keepDim)
            return g.Alias();
        return ReshapeNoGrad(g, ReducedShape(inShape, dims, keepDim: true));
    }

    /// <summary>Sum over <paramref name="dims"/> (all when null).</summary>
    public static Tensor Sum(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        var d = ReduceDims("sum", dims, x.Rank);
        var (r, _) = ReduceNoGrad(ReduceKind.Sum, "sum", x, d, keepDim);
        if (!Recorder.Needs(x))
            return r;
        var shape = x.ShapeArray;
        return Recorder.Record(r, "sum", [x], g =>
        {
            using var u = Unreduce(g, shape, d, keepDim);
            return [ExpandNoGrad(u, shape)];
        });
    }

    /// <summary>Mean over <paramref name="dims"/> (all when null).</summary>
    public static Tensor Mean(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.DType.IsFloating())
            throw Unsupported("mean", x.DType, "a floating dtype");
        var d = ReduceDims("mean", dims, x.Rank);
        var (r, _) = ReduceNoGrad(ReduceKind.Mean, "mean", x, d, keepDim);
        if (!Recorder.Needs(x))
            return r;
        var shape = x.ShapeArray;
        int n = d.Aggregate(1, (acc, i) => acc * shape[i]);
        return Recorder.Record(r, "mean", [x], g =>
        {
            using var u = Unreduce(g, shape, d, keepDim);
            using var e = ExpandNoGrad(u, shape);
            return [MulScalar(e, 1.0 / n)];
        });
    }

    /// <summary>Variance over dims with Bessel's correction by default (<paramref name="correction"/> = 1).</summary>
    public static Tensor Var(Tensor x, int[]? dims = null, bool keepDim = false, double correction = 1)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.DType.IsFloating())
            throw Unsupported("var", x.DType, "a floating dtype");
        var d = ReduceDims("var", dims, x.Rank);
        var (r, _) = ReduceNoGrad(ReduceKind.Var, "var", x, d, keepDim, correction);
        if (!Recorder.Needs(x))
            return r;
        var shape = x.ShapeArray;
        int n = d.Aggregate(1, (acc, i) => acc * shape[i]);
        return Recorder.Record(r, "var", [x], [x], (g, s) =>
        {
            // d var / dx = 2 (x - mean) / (n - correction)
            using var mean = Mean(s[0], d, keepDim: true);
            using var centered = Sub(s[0], mean);
            using var u = Unreduce(g, shape, d, keepDim);
            using var gc = Mul(centered, u);
            return [MulScalar(gc, 2.0 / Math.Max(n - correction, 0))];
        });
    }

    /// <summary>Standard deviation (square root of <see cref="Var"/>).</summary>
    public static Tensor Std(Tensor x, int[]? dims = null, bool keepDim = false, double correction = 1)
    {
        using var v = Var(x, dims, keepDim, correction);
        return Sqrt(v);
    }

    /// <summary>log(sum(exp(x))) over dims, computed stably.</summary>
    public static Tensor LogSumExp(Tensor x, int[] dims, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.DType.IsFloating())
            throw Unsupported("logsumexp", x.DType, "a floating dtype");
        var d = ReduceDims("logsumexp", dims, x.Rank);
        var (r, _) = ReduceNoGrad(ReduceKind.LogSumExp, "logsumexp", x, d, keepDim);
        if (!Recorder.Needs(x))
            return r;
        var shape = x.ShapeArray;
        return Recorder.Record(r, "logsumexp", [x], [x, r], (g, s) =>
        {
            using var lr = Unreduce(s[1], shape, d, keepDim);
            using var diff = Sub(s[0], lr);
            using var p = Exp(diff);
            using var u = Unreduce(g, shape, d, keepDim);
            return [Mul(p, u)];
        });
    }

    /// <summary>Vector p-norm over dims: p = 1, 2 or +infinity.</summary>
    public static Tensor Norm(Tensor x, double p = 2, int[]? dims = null, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.DType.IsFloating())
            throw Unsupported("norm", x.DType, "a floating dtype");
        var op = p switch
        {
            1 => ReduceKind.Norm1,
            2 => ReduceKind.Norm2,
            double.PositiveInfinity => ReduceKind.NormInf,
            _ => throw new ArgumentException($"norm: p must be 1, 2 or infinity, got {p}", nameof(p)),
        };
        var d = ReduceDims("norm", dims, x.Rank);
        var (r, _) = ReduceNoGrad(op, "norm", x, d, keepDim);
        if (!Recorder.Needs(x))
            return r;
        var shape = x.ShapeArray;
        return Recorder.Record(r, "norm", [x], [x, r], (g, s) =>
        {
            using var u = Unreduce(g, shape, d, keepDim);
            using var nr = Unreduce(s[1], shape, d, keepDim);
            switch (op)
            {
                case ReduceKind.Norm1:
                {
                    using var sg = Sign(s[0]);
                    return [Mul(sg, u)];
                }
                case ReduceKind.Norm2:
                {
                    // x / ‖x‖, and 0 at a zero vector (PyTorch's subgradient), never 0 / 0.
                    using var zero = EqScalar(nr, 0);
                    using var safe = MaskedFill(nr, zero, 1);
                    using var q = Div(s[0], safe);
                    return [Mul(q, u)];
                }
                default:
                {
                    using var ax = Abs(s[0]);
                    using var at = Eq(ax, nr);
                    using var m = To(at, g.DType);
                    using var cnt = Sum(m, d, keepDim: true);
                    using var sg = Sign(s[0]);
                    using var w = Div(m, cnt);
                    using var ws = Mul(w, sg);
                    return [Mul(ws, u)];
                }
            }
        });
    }
}
