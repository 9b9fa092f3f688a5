using HpcEngine.Backends;

namespace HpcEngine;

/// <summary>The elementwise functions of torch's math ops (trigonometric, hyperbolic, erf, exp/log variants and
/// rounding), each a primitive of every backend with its derivative. Integer inputs become float32, as in PyTorch,
/// except for the rounding functions, which leave an integer tensor as it is.</summary>
public static partial class Ops
{
    /// <summary>sin x elementwise.</summary>
    public static Tensor Sin(Tensor x) => Unary(UnaryOp.Sin, "sin", x);

    /// <summary>cos x elementwise.</summary>
    public static Tensor Cos(Tensor x) => Unary(UnaryOp.Cos, "cos", x);

    /// <summary>tan x elementwise.</summary>
    public static Tensor Tan(Tensor x) => Unary(UnaryOp.Tan, "tan", x);

    /// <summary>arcsin x elementwise (NaN outside [−1, 1]; the gradient is infinite at ±1, as PyTorch's).</summary>
    public static Tensor Asin(Tensor x) => Unary(UnaryOp.Asin, "asin", x);

    /// <summary>arccos x elementwise (NaN outside [−1, 1]).</summary>
    public static Tensor Acos(Tensor x) => Unary(UnaryOp.Acos, "acos", x);

    /// <summary>arctan x elementwise.</summary>
    public static Tensor Atan(Tensor x) => Unary(UnaryOp.Atan, "atan", x);

    /// <summary>sinh x elementwise.</summary>
    public static Tensor Sinh(Tensor x) => Unary(UnaryOp.Sinh, "sinh", x);

    /// <summary>cosh x elementwise.</summary>
    public static Tensor Cosh(Tensor x) => Unary(UnaryOp.Cosh, "cosh", x);

    /// <summary>The error function elementwise.</summary>
    public static Tensor Erf(Tensor x) => Unary(UnaryOp.Erf, "erf", x);

    /// <summary>The inverse error function elementwise: erfinv(erf(x)) = x; ±∞ at ±1, NaN outside [−1, 1].</summary>
    public static Tensor Erfinv(Tensor x) => Unary(UnaryOp.Erfinv, "erfinv", x);

    /// <summary>eˣ − 1 elementwise, accurate for small x.</summary>
    public static Tensor Expm1(Tensor x) => Unary(UnaryOp.Expm1, "expm1", x);

    /// <summary>log₂ x elementwise.</summary>
    public static Tensor Log2(Tensor x) => Unary(UnaryOp.Log2, "log2", x);

    /// <summary>log₁₀ x elementwise.</summary>
    public static Tensor Log10(Tensor x) => Unary(UnaryOp.Log10, "log10", x);

    /// <summary>The largest integer ≤ x elementwise (gradient 0, as PyTorch's).</summary>
    public static Tensor Floor(Tensor x) => Rounding(UnaryOp.Floor, "floor", x);

    /// <summary>The smallest integer ≥ x elementwise (gradient 0).</summary>
    public static Tensor Ceil(Tensor x) => Rounding(UnaryOp.Ceil, "ceil", x);

    /// <summary>The nearest integer elementwise, halves to even (torch.round: 0.5 → 0, 1.5 → 2, −2.5 → −2; gradient
    /// 0).</summary>
    public static Tensor Round(Tensor x) => Rounding(UnaryOp.Round, "round", x);

    /// <summary>x without its fraction, towards 0, elementwise (gradient 0).</summary>
    public static Tensor Trunc(Tensor x) => Rounding(UnaryOp.Trunc, "trunc", x);

    /// <summary>The fraction x − trunc(x), with x's sign (torch.frac; gradient 1).</summary>
    public static Tensor Frac(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var t = Trunc(x);
        return Sub(x, t);
    }

    private static Tensor Rounding(UnaryOp op, string name, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return x.DType.IsFloating() ? Unary(op, name, x) : Clone(x);
    }
}
