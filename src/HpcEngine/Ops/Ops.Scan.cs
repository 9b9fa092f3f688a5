using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine;

/// <summary>Scans along one dim — cumsum, cumprod, cummax / cummin, logcumsumexp — over the backends' scan primitive,
/// and prod, read off the running product. Integer and bool inputs sum and multiply in int64 (PyTorch's promotion);
/// 16-bit floats scan in float32.</summary>
public static partial class Ops
{
    /// <summary>torch.cumsum: element i along <paramref name="dim"/> is the sum of elements 0..i.</summary>
    public static Tensor CumSum(Tensor x, int dim)
    {
        var (y, _, d) = ScanRecorded(ScanOp.Sum, "cumsum", x, dim);
        if (!Recorder.Needs(x))
            return y;
        return Recorder.Record(y, "cumsum", [x], g => [ReverseCumSum(g, d)]);
    }

    /// <summary>torch.cumprod: element i along <paramref name="dim"/> is the product of elements 0..i. The gradient is
    /// exact with zeros in the input (PyTorch's rule: below the first zero by division, at it by the product of the
    /// others, past it 0).</summary>
    public static Tensor CumProd(Tensor x, int dim)
    {
        var (y, _, d) = ScanRecorded(ScanOp.Prod, "cumprod", x, dim);
        if (!Recorder.Needs(x))
            return y;
        return Recorder.Record(y, "cumprod", [x], [x, y], (g, s) => [CumProdBackward(s[0], s[1], g, d)]);
    }

    /// <summary>torch.cummax: the running maximum and the int64 index it was found at (ties and NaN as PyTorch: the
    /// latest equal value's index; a NaN, once seen, stays). The gradient goes to those indices.</summary>
    public static (Tensor Values, Tensor Indices) CumMax(Tensor x, int dim) => CumExtreme(ScanOp.Max, "cummax", x, dim);

    /// <summary>torch.cummin: the running minimum and its index (rules as <see cref="CumMax"/>).</summary>
    public static (Tensor Values, Tensor Indices) CumMin(Tensor x, int dim) => CumExtreme(ScanOp.Min, "cummin", x, dim);

    /// <summary>torch.logcumsumexp: log Σ_{j ≤ i} exp(x_j) along <paramref name="dim"/>, without overflow.</summary>
    public static Tensor LogCumSumExp(Tensor x, int dim)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.DType.IsFloating())
            throw new DTypeMismatchException(
                $"logcumsumexp: needs a floating-point input, got {x.DType.TorchName()}; convert with .To(DType.Float32)"
            );
        var (y, _, d) = ScanRecorded(ScanOp.LogSumExp, "logcumsumexp", x, dim);
        if (!Recorder.Needs(x))
            return y;
        return Recorder.Record(y, "logcumsumexp", [x], [x, y], (g, s) => [LogCumSumExpBackward(s[0], s[1], g, d)]);
    }

    /// <summary>torch.prod: the product of every element (1 for an empty tensor); integers give int64.</summary>
    public static Tensor Prod(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var flat = Reshape(x, -1);
        return Prod(flat, 0);
    }

    /// <summary>torch.prod over one dim (1 over an empty dim); its gradient is exact with zeros (through
    /// cumprod's).</summary>
    public static Tensor Prod(Tensor x, int dim, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank == 0)
            return x.DType.IsFloating() ? Identity(x) : ToDType(x, DType.Int64, true);
        int d = Shapes.NormalizeDim("prod", dim, x.Rank),
            n = x.Shape[d];
        if (n == 0)
        {
            var shape = ReducedShape(x.Shape, [d], keepDim);
            return ScalarsOn(shape, 1, x.DType.IsFloating() ? x.DType : DType.Int64, x.Device);
        }
        using var running = CumProd(x, d);
        using var last = Narrow(running, d, n - 1, 1);
        return keepDim ? Identity(last) : Squeeze(last, d);
    }

    private static (Tensor, Tensor) CumExtreme(ScanOp op, string name, Tensor x, int dim)
    {
        var (y, idx, d) = ScanRecorded(op, name, x, dim);
        if (!Recorder.Needs(x))
            return (y, idx!);
        var shape = x.ShapeArray;
        Recorder.Record(y, name, [x], [idx!], (g, s) =>
        {
            if (shape.Length == 0)
                return [g.Alias()];
            using var z = Tensor.Empty(shape, g.DType, g.Device, zeroed: true);
            return [ScatterAddNoGrad(z, d, s[0], g)];
        });
        return (y, idx!);
    }

    /// <summary>The scan without recording: values, the indices for max/min, and the normalised dim.</summary>
    private static (Tensor Values, Tensor? Indices, int Dim) ScanRecorded(ScanOp op, string name, Tensor x, int dim)
    {
        ArgumentNullException.ThrowIfNull(x);
        x.CheckAlive();
        int d = Shapes.NormalizeDim(name, dim, Math.Max(x.Rank, 1));
        var (v, i) = ScanNoGrad(op, name, x, d);
        return (v, i, d);
    }

    private static (Tensor Values, Tensor? Indices) ScanNoGrad(ScanOp op, string name, Tensor x, int d)
    {
        bool extreme = op is ScanOp.Max or ScanOp.Min;
        // Integers sum and multiply in int64 (PyTorch's result dtype) and keep their dtype through max/min; 16-bit
        // floats scan in float32 and round back.
        var wide = x.DType.IsFloating() ? x.DType.ComputeType() : DType.Int64;
        if (wide != x.DType)
        {
            using var xw = ToDType(x, wide, false);
            var (vw, iw) = ScanNoGrad(op, name, xw, d);
            if (!extreme && !x.DType.IsFloating())
                return (vw, iw);
            using (vw)
                return (ToDType(vw, x.DType, false), iw);
        }
        using var c = ContiguousNoGrad(x);
        var shape = x.ShapeArray;
        int outer = 1,
            inner = 1,
            n = x.Rank == 0 ? 1 : shape[d];
        for (int k = 0; k < d; k++)
            outer *= shape[k];
        for (int k = d + 1; k < shape.Length; k++)
            inner *= shape[k];
        var values = Tensor.Empty(shape, x.DType, x.Device);
        var indices = extreme ? Tensor.Empty(shape, DType.Int64, x.Device) : null;
        x.Backend.Scan(op, c, outer, n, inner, values, indices);
        return (values, indices);
    }

    /// <summary>Σ_{j ≥ i} g_j along d: the flipped cumsum of the flipped gradient.</summary>
    private static Tensor ReverseCumSum(Tensor g, int d)
    {
        if (g.Rank == 0)
            return g.Alias();
        using var f = Flip(g, d);
        using var s = CumSum(f, d);
        return Flip(s, d);
    }

    /// <summary>dx_i = Σ_{j ≥ i} g_j ∏_{k ≤ j, k ≠ i} x_k, composed so that zeros are exact: before a line's first zero
    /// it is Σ g_j y_j / x_i; at the first zero, the cumprod of the line with that zero set to 1 stands in for
    /// ∏_{k ≠ i}; after it, every product holds the zero.</summary>
    private static Tensor CumProdBackward(Tensor x, Tensor y, Tensor g, int d)
    {
        if (x.Rank == 0)
            return g.Alias();
        using var zero = Tensor.Scalar(0, x.DType);
        using var one = Tensor.Scalar(1, x.DType);
        using var isZero = Eq(x, zero);
        using var zeroCount = To(isZero, x.DType);
        using var zerosSoFar = CumSum(zeroCount, d);
        using var beforeZero = Eq(zerosSoFar, zero);
        using var oneSoFar = Eq(zerosSoFar, one);
        using var firstZero = LogicalAnd(isZero, oneSoFar);
        using var safeX = Where(isZero, one, x);
        using var gy = Mul(g, y);
        using var tail = ReverseCumSum(gy, d);
        using var divided = Div(tail, safeX);
        using var withoutZero = Where(firstZero, one, x);
        using var yOthers = CumProd(withoutZero, d);
        using var gyo = Mul(g, yOthers);
        using var atZero = ReverseCumSum(gyo, d);
        using var atFirst = Where(firstZero, atZero, zero);
        return Where(beforeZero, divided, atFirst);
    }

    /// <summary>dx_i = Σ_{j ≥ i} g_j exp(x_i − y_j), split by the sign of g so that each half is a reverse
    /// logcumsumexp of log|g| − y (PyTorch's stable form).</summary>
    private static Tensor LogCumSumExpBackward(Tensor x, Tensor y, Tensor g, int d)
    {
        if (x.Rank == 0)
            return g.Alias();
        using var zero = Tensor.Scalar(0, x.DType);
        using var pos = Maximum(g, zero);
        using var ng = Neg(g);
        using var neg = Maximum(ng, zero);
        using var p = SignedPart(x, y, pos, d);
        using var m = SignedPart(x, y, neg, d);
        return Sub(p, m);
    }

    private static Tensor SignedPart(Tensor x, Tensor y, Tensor part, int d)
    {
        using var logPart = Log(part);
        using var shifted = Sub(logPart, y);
        using var flipped = Flip(shifted, d);
        using var scanned = LogCumSumExp(flipped, d);
        using var back = Flip(scanned, d);
        using var sum = Add(x, back);
        return Exp(sum);
    }
}
