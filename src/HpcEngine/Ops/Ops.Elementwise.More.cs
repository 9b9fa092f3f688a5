using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>Elementwise ops of torch written over the primitives: NaN and infinity tests, nan_to_num, lerp and
/// hypot.</summary>
public static partial class Ops
{
    /// <summary>Whether each element is NaN (bool; false for integer tensors).</summary>
    public static Tensor IsNan(Tensor x) => Ne(x, x);

    /// <summary>Whether each element is +∞ or −∞ (bool; false for integer tensors).</summary>
    public static Tensor IsInf(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.DType.IsFloating())
            return Ne(x, x);
        using var noGrad = GradMode.NoGrad();
        using var a = Abs(x);
        return EqScalar(a, double.PositiveInfinity);
    }

    /// <summary>Whether each element is finite: neither NaN nor infinite (bool; true for integer tensors).</summary>
    public static Tensor IsFinite(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.DType.IsFloating())
            return Eq(x, x);
        using var noGrad = GradMode.NoGrad();
        using var d = Sub(x, x); // 0 when finite; NaN for NaN and for ±∞ (∞ − ∞)
        return EqScalar(d, 0);
    }

    /// <summary>torch.nan_to_num: NaN → <paramref name="nan"/>, +∞ → <paramref name="posInf"/>, −∞ →
    /// <paramref name="negInf"/> (default: the dtype's largest and smallest finite values); the gradient is 0 at
    /// the replaced elements.</summary>
    public static Tensor NanToNum(Tensor x, double nan = 0, double? posInf = null, double? negInf = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.DType.IsFloating())
            return Clone(x);
        double max = x.DType switch
        {
            DType.Float64 => double.MaxValue,
            DType.Float16 => 65504,
            DType.BFloat16 => 3.3895313892515355e38,
            _ => float.MaxValue,
        };
        using var isNan = IsNan(x);
        using var isPos = EqScalar(x, double.PositiveInfinity);
        using var isNeg = EqScalar(x, double.NegativeInfinity);
        using var a = MaskedFill(x, isNan, nan);
        using var b = MaskedFill(a, isPos, posInf ?? max);
        return MaskedFill(b, isNeg, negInf ?? -max);
    }

    /// <summary>torch.lerp with a scalar weight: a + w·(b − a), computed as b − (b − a)·(1 − w) for w ≥ ½ so that
    /// w = 1 gives b exactly (PyTorch's two-sided formula).</summary>
    public static Tensor Lerp(Tensor a, Tensor b, double weight)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        using var diff = Sub(b, a);
        if (weight < 0.5)
        {
            using var step = MulScalar(diff, weight);
            return Add(a, step);
        }
        using var back = MulScalar(diff, 1 - weight);
        return Sub(b, back);
    }

    /// <summary>torch.lerp with a tensor weight (broadcast): a + w·(b − a); differentiable in all three.</summary>
    public static Tensor Lerp(Tensor a, Tensor b, Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(weight);
        using var diff = Sub(b, a);
        using var step = Mul(weight, diff);
        return Add(a, step);
    }

    /// <summary>√(a² + b²) elementwise, broadcasting, scaled by max(|a|, |b|) so that it neither overflows nor
    /// underflows where the result is representable, and +∞ where either is infinite (C's hypot); 0 where both are
    /// 0.</summary>
    public static Tensor Hypot(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        using var aa = Abs(a);
        using var ab = Abs(b);
        using var m = Maximum(aa, ab);
        using var zero = EqScalar(m, 0);
        using var scale = MaskedFill(m, zero, 1);
        using var ra = Div(a, scale);
        using var rb = Div(b, scale);
        using var ra2 = Mul(ra, ra);
        using var rb2 = Mul(rb, rb);
        using var s = Add(ra2, rb2);
        using var root = Sqrt(s);
        using var r = Mul(scale, root);
        using var finite = MaskedFill(r, zero, 0);
        using var infA = IsInf(a);
        using var infB = IsInf(b);
        using var inf = LogicalOr(infA, infB);
        return MaskedFill(finite, inf, double.PositiveInfinity); // hypot(±∞, anything) = +∞, NaN included
    }
}
