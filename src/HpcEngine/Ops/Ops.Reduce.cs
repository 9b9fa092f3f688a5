using HpcEngine.Autograd;
using HpcEngine.Backends.Cpu;

namespace HpcEngine;

public static partial class Ops
{
    /// <summary>Normalises the reduce dims (null or empty = all), sorted and unique.</summary>
    internal static int[] ReduceDims(string op, int[]? dims, int rank)
    {
        if (dims == null || dims.Length == 0) return Enumerable.Range(0, rank).ToArray();
        var r = dims.Select(d => Shapes.NormalizeDim(op, d, rank)).Distinct().Order().ToArray();
        if (r.Length != dims.Length) throw new ArgumentException($"{op}: dims {Shapes.Format(dims)} repeat a dimension", nameof(dims));
        return r;
    }

    private static int[] ReducedShape(ReadOnlySpan<int> shape, int[] dims, bool keepDim)
    {
        var r = new List<int>();
        for (int i = 0; i < shape.Length; i++)
        {
            if (Array.IndexOf(dims, i) < 0) r.Add(shape[i]);
            else if (keepDim) r.Add(1);
        }
        return r.ToArray();
    }

    /// <summary>How a reduction over <paramref name="dims"/> lays x out: the result's shape, the kept dims, and x as
    /// [outer, inner] rows once the kept dims come first.</summary>
    private static (int[] OutShape, int[] Kept, int Outer, int Inner) ReduceLayout(Tensor x, int[] dims, bool keepDim)
    {
        var kept = Enumerable.Range(0, x.Rank).Where(i => Array.IndexOf(dims, i) < 0).ToArray();
        int outer = 1, inner = 1;
        foreach (int k in kept) outer *= x.Shape[k];
        foreach (int d in dims) inner *= x.Shape[d];
        return (ReducedShape(x.Shape, dims, keepDim), kept, outer, inner);
    }

    /// <summary>Computes a reduction without recording: returns the values (and int64 indices for max/min).</summary>
    private static unsafe (Tensor Values, Tensor? Indices) ReduceNoGrad(ReduceOp op, string name, Tensor x, int[] dims, bool keepDim, double correction = 1)
    {
        x.CheckAlive();
        var (outShape, kept, outer, inner) = ReduceLayout(x, dims, keepDim);
        bool wantIdx = op is ReduceOp.Max or ReduceOp.Min or ReduceOp.ArgMax or ReduceOp.ArgMin;
        if (wantIdx && inner == 0)
            throw new ShapeMismatchException($"{name}: cannot reduce over an empty dimension (shape {Shapes.Format(x.Shape)}, dims {Shapes.Format(dims)})");
        if (!x.IsCpu && x.DType is DType.BFloat16 or DType.Float16)
        {
            // As on the CPU: reduce in fp32, round the values back (indices stay int64).
            using var wide = ToDType(x, DType.Float32, false);
            var (v32, i) = ReduceNoGrad(op, name, wide, dims, keepDim, correction);
            using (v32) return (op is ReduceOp.ArgMax or ReduceOp.ArgMin ? v32.Alias() : ToDType(v32, x.DType, false), i);
        }
        if (!x.IsCpu)
        {
            if (op is ReduceOp.Max or ReduceOp.Min or ReduceOp.ArgMax or ReduceOp.ArgMin) return DeviceExtreme(op, x, dims, keepDim);
            if (op is not (ReduceOp.Sum or ReduceOp.Mean)) return (DeviceComposedReduce(op, x, dims, keepDim, inner, correction), null);
            return (DeviceSum(x, dims, keepDim, op == ReduceOp.Mean ? 1.0 / Math.Max(inner, 1) : 1.0), null);
        }

        if (!x.DType.IsFloating())
        {
            if (op == ReduceOp.Sum)
            {
                using var xl = ToDType(x, DType.Int64, false);
                using var arranged = Arrange(xl, kept, dims);
                var ri = Tensor.Empty(outShape, DType.Int64);
                ReduceKernels.SumRowsInt64(arranged.Ptr<long>(), outer, inner, ri.Ptr<long>());
                return (ri, null);
            }
            using var xf = ToDType(x, DType.Float64, false);
            var (v, idx) = ReduceNoGrad(op, name, xf, dims, keepDim, correction);
            if (op is ReduceOp.Max or ReduceOp.Min) { using (v) return (ToDType(v, x.DType, false), idx); }
            return (v, idx);
        }

        var compute = x.DType.ComputeType();
        using var xc = ToDType(x, compute, false);
        var values = Tensor.Empty(outShape, compute);
        Tensor? indices = wantIdx ? Tensor.Empty(outShape, DType.Int64) : null;
        long* pidx = indices != null ? indices.Ptr<long>() : null;
        // Leading-dims sum of a contiguous tensor: add rows instead of transposing.
        bool leading = op == ReduceOp.Sum && xc.IsContiguous && dims.SequenceEqual(Enumerable.Range(0, dims.Length)) && dims.Length < x.Rank;
        if (leading)
        {
            if (compute == DType.Float32) ReduceKernels.SumColumns(xc.Ptr<float>(), inner, outer, values.Ptr<float>());
            else ReduceKernels.SumColumns(xc.Ptr<double>(), inner, outer, values.Ptr<double>());
        }
        else
        {
            using var arranged = Arrange(xc, kept, dims);
            if (compute == DType.Float32) ReduceKernels.Rows(op, arranged.Ptr<float>(), outer, inner, values.Ptr<float>(), pidx, correction);
            else ReduceKernels.Rows(op, arranged.Ptr<double>(), outer, inner, values.Ptr<double>(), pidx, correction);
        }
        if (compute != x.DType) values = values.Replace(ToDType(values, x.DType, false));
        return (values, indices);
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
        if (keepDim) return g.Alias();
        return ReshapeNoGrad(g, ReducedShape(inShape, dims, keepDim: true));
    }

    /// <summary>Sum over <paramref name="dims"/> (all when null).</summary>
    public static Tensor Sum(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        var d = ReduceDims("sum", dims, x.Rank);
        var (r, _) = ReduceNoGrad(ReduceOp.Sum, "sum", x, d, keepDim);
        if (!Recorder.Needs(x)) return r;
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
        if (!x.DType.IsFloating()) throw Unsupported("mean", x.DType, "a floating dtype");
        var d = ReduceDims("mean", dims, x.Rank);
        var (r, _) = ReduceNoGrad(ReduceOp.Mean, "mean", x, d, keepDim);
        if (!Recorder.Needs(x)) return r;
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
        if (!x.DType.IsFloating()) throw Unsupported("var", x.DType, "a floating dtype");
        var d = ReduceDims("var", dims, x.Rank);
        var (r, _) = ReduceNoGrad(ReduceOp.Var, "var", x, d, keepDim, correction);
        if (!Recorder.Needs(x)) return r;
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
        if (!x.DType.IsFloating()) throw Unsupported("logsumexp", x.DType, "a floating dtype");
        var d = ReduceDims("logsumexp", dims, x.Rank);
        var (r, _) = ReduceNoGrad(ReduceOp.LogSumExp, "logsumexp", x, d, keepDim);
        if (!Recorder.Needs(x)) return r;
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
        if (!x.DType.IsFloating()) throw Unsupported("norm", x.DType, "a floating dtype");
        var op = p switch
        {
            1 => ReduceOp.Norm1,
            2 => ReduceOp.Norm2,
            double.PositiveInfinity => ReduceOp.NormInf,
            _ => throw new ArgumentException($"norm: p must be 1, 2 or infinity, got {p}", nameof(p)),
        };
        var d = ReduceDims("norm", dims, x.Rank);
        var (r, _) = ReduceNoGrad(op, "norm", x, d, keepDim);
        if (!Recorder.Needs(x)) return r;
        var shape = x.ShapeArray;
        return Recorder.Record(r, "norm", [x], [x, r], (g, s) =>
        {
            using var u = Unreduce(g, shape, d, keepDim);
            using var nr = Unreduce(s[1], shape, d, keepDim);
            switch (op)
            {
                case ReduceOp.Norm1:
                {
                    using var sg = Sign(s[0]);
                    return [Mul(sg, u)];
                }
                case ReduceOp.Norm2:
                {
                    using var q = Div(s[0], nr);
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

    /// <summary>Maximum over one dim with the int64 index of the first maximum.</summary>
    public static (Tensor Values, Tensor Indices) Max(Tensor x, int dim, bool keepDim = false) => MaxMin(ReduceOp.Max, "max", x, dim, keepDim);

    /// <summary>Minimum over one dim with the int64 index of the first minimum.</summary>
    public static (Tensor Values, Tensor Indices) Min(Tensor x, int dim, bool keepDim = false) => MaxMin(ReduceOp.Min, "min", x, dim, keepDim);

    /// <summary>Largest element (gradient split evenly over ties, as PyTorch's amax).</summary>
    public static Tensor Max(Tensor x) => Extreme(ReduceOp.Max, "max", x);

    /// <summary>Smallest element.</summary>
    public static Tensor Min(Tensor x) => Extreme(ReduceOp.Min, "min", x);

    /// <summary>Index of the largest value along <paramref name="dim"/> (int64).</summary>
    public static Tensor ArgMax(Tensor x, int dim, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (v, i) = ReduceNoGrad(ReduceOp.ArgMax, "argmax", x, [Shapes.NormalizeDim("argmax", dim, x.Rank)], keepDim);
        v.Dispose();
        return i!;
    }

    /// <summary>Index of the smallest value along <paramref name="dim"/> (int64).</summary>
    public static Tensor ArgMin(Tensor x, int dim, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (v, i) = ReduceNoGrad(ReduceOp.ArgMin, "argmin", x, [Shapes.NormalizeDim("argmin", dim, x.Rank)], keepDim);
        v.Dispose();
        return i!;
    }

    private static (Tensor, Tensor) MaxMin(ReduceOp op, string name, Tensor x, int dim, bool keepDim)
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

    private static Tensor Extreme(ReduceOp op, string name, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.NumEl == 0) throw new ShapeMismatchException($"{name}: the tensor is empty (shape {Shapes.Format(x.Shape)}); there is no {name}imum");
        var all = Enumerable.Range(0, x.Rank).ToArray();
        var (v, idx) = ReduceNoGrad(op, name, x, all, false);
        idx?.Dispose();
        if (!Recorder.Needs(x)) return v;
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
