using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine;

/// <summary>The binary math functions of torch — atan2, fmod, remainder, copysign — each a primitive of every backend,
/// with broadcasting and PyTorch's gradients (the integer quotients of fmod and remainder are constants of the
/// divisor's gradient; copysign passes none to its sign source).</summary>
public static partial class Ops
{
    /// <summary>torch.atan2: the angle of the point (x = <paramref name="other"/>, y = <paramref name="input"/>) in
    /// (−π, π], elementwise with broadcasting; integers become float32.</summary>
    public static Tensor Atan2(Tensor input, Tensor other)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(other);
        if (input.DType.IsFloating() || other.DType.IsFloating())
            return Binary(BinaryOp.Atan2, "atan2", input, other);
        using var a = To(input, DType.Float32);
        using var b = To(other, DType.Float32);
        return Binary(BinaryOp.Atan2, "atan2", a, b);
    }

    /// <summary>torch.fmod: a − trunc(a / b) · b, the sign of the dividend (C's fmod; integers exactly).</summary>
    public static Tensor Fmod(Tensor a, Tensor b) => Binary(BinaryOp.Fmod, "fmod", a, b);

    /// <summary>torch.fmod by a scalar.</summary>
    public static Tensor Fmod(Tensor a, double b)
    {
        using var s = Tensor.Scalar(b, ScalarType(a, b));
        return Fmod(a, s);
    }

    /// <summary>torch.remainder: a − floor(a / b) · b, the sign of the divisor (Python's %; integers
    /// exactly).</summary>
    public static Tensor Remainder(Tensor a, Tensor b) => Binary(BinaryOp.Remainder, "remainder", a, b);

    /// <summary>torch.remainder by a scalar.</summary>
    public static Tensor Remainder(Tensor a, double b)
    {
        using var s = Tensor.Scalar(b, ScalarType(a, b));
        return Remainder(a, s);
    }

    /// <summary>torch.copysign: |a| with the sign of b (its sign bit: −0.0 counts as negative).</summary>
    public static Tensor CopySign(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.DType.IsFloating() || b.DType.IsFloating())
            return Binary(BinaryOp.CopySign, "copysign", a, b);
        using var af = To(a, DType.Float32);
        return Binary(BinaryOp.CopySign, "copysign", af, b);
    }

    /// <summary>The scalar's dtype beside <paramref name="a"/>: a's own for floats and for whole numbers beside
    /// integers, else float64 (so 7 % 2.5 is not truncated).</summary>
    private static DType ScalarType(Tensor a, double b) =>
        a.DType.IsFloating() ? a.DType
        : b == Math.Floor(b) ? DType.Int64
        : DType.Float64;

    private static Tensor RecordMathBinary(BinaryOp op, string name, Tensor r, Tensor a, Tensor b)
    {
        int[] sa = a.ShapeArray,
            sb = b.ShapeArray;
        bool ga = a.NeedsGrad,
            gb = b.NeedsGrad;
        switch (op)
        {
            case BinaryOp.Atan2:
                return Recorder.Record(r, name, [a, b], [a, b], (g, s) =>
                {
                    // d/dy atan2(y, x) = x / (x² + y²), d/dx = −y / (x² + y²)
                    using var yy = Mul(s[0], s[0]);
                    using var xx = Mul(s[1], s[1]);
                    using var r2 = Add(yy, xx);
                    using var gr = Div(g, r2);
                    Tensor? da = ga ? SumToOwned(Mul(gr, s[1]), sa) : null;
                    Tensor? db = null;
                    if (gb)
                    {
                        using var gy = Mul(gr, s[0]);
                        db = SumToOwned(Neg(gy), sb);
                    }
                    return [da, db];
                });
            case BinaryOp.Fmod:
            case BinaryOp.Remainder:
                return Recorder.Record(r, name, [a, b], [a, b], (g, s) =>
                {
                    Tensor? db = null;
                    if (gb)
                    {
                        using var q = Div(s[0], s[1]);
                        using var whole = op == BinaryOp.Fmod ? Trunc(q) : Floor(q);
                        using var gq = Mul(g, whole);
                        db = SumToOwned(Neg(gq), sb);
                    }
                    return [ga ? SumTo(g, sa) : null, db];
                });
            case BinaryOp.CopySign:
                return Recorder.Record(r, name, [a, b], [a, r], (g, s) =>
                {
                    // ±1 where a is nonzero (the sign flip), 0 at a = 0; the sign source gets zeros, as PyTorch.
                    var db = gb ? Tensor.Empty(sb, g.DType, g.Device, zeroed: true) : null;
                    if (!ga)
                        return [null, db];
                    using var zero = Tensor.Scalar(0, s[0].DType);
                    using var isZero = Eq(s[0], zero);
                    using var ratio = Div(s[1], s[0]);
                    using var flip = Where(isZero, zero, ratio);
                    return [SumToOwned(Mul(g, flip), sa), db];
                });
            default:
                throw new ArgumentOutOfRangeException(nameof(op));
        }
    }
}
