namespace HpcEngine;

/// <summary>The activations PyTorch users reach for beyond ReLU/GELU/SiLU, composed of the engine's primitives (so
/// every backend and dtype runs them, and autograd differentiates them): the exponential family (ELU, SELU, CELU,
/// softplus, mish, log-sigmoid), the hard (piecewise-linear) ones, softsign and GLU. Exponentials are taken of the
/// clamped branch only, so a large input gives neither an overflow nor a NaN gradient in the branch not taken.</summary>
public static partial class F
{
    private const double SeluAlpha = 1.6732632423543772848170429916717;
    private const double SeluScale = 1.0507009873554804934193349852946;

    /// <summary>ELU: x for x &gt; 0, α(eˣ − 1) otherwise (torch.nn.functional.elu).</summary>
    public static Tensor Elu(Tensor x, double alpha = 1.0) => ExpLinear(x, alpha, 1.0);

    /// <summary>SELU: scale · ELU(x, α) with the self-normalising constants (torch.nn.functional.selu).</summary>
    public static Tensor Selu(Tensor x)
    {
        using var e = ExpLinear(x, SeluAlpha, 1.0);
        return Ops.MulScalar(e, SeluScale);
    }

    /// <summary>CELU: x for x &gt; 0, α(e^(x/α) − 1) otherwise (torch.nn.functional.celu).</summary>
    public static Tensor Celu(Tensor x, double alpha = 1.0)
    {
        if (alpha == 0)
            throw new ArgumentOutOfRangeException(nameof(alpha), "celu: alpha must not be 0");
        return ExpLinear(x, alpha, 1.0 / alpha);
    }

    /// <summary>x where x &gt; 0, else α(e^(s·x) − 1), the exponential taken of min(x, 0).</summary>
    private static Tensor ExpLinear(Tensor x, double alpha, double s)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var positive = Ops.GtScalar(x, 0);
        using var neg = Ops.Clamp(x, max: 0);
        using var scaled = Ops.MulScalar(neg, s);
        using var e = Ops.Exp(scaled);
        using var em1 = Ops.AddScalar(e, -1);
        using var branch = Ops.MulScalar(em1, alpha);
        return Ops.Where(positive, x, branch);
    }

    /// <summary>Softplus: log(1 + e^(βx)) / β, and x itself where βx &gt; threshold (torch.nn.functional.softplus).</summary>
    public static Tensor Softplus(Tensor x, double beta = 1.0, double threshold = 20.0)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var bx = Ops.MulScalar(x, beta);
        using var linear = Ops.GtScalar(bx, threshold);
        using var capped = Ops.Clamp(bx, max: threshold);
        using var e = Ops.Exp(capped);
        using var l = Ops.Log1p(e);
        using var soft = Ops.MulScalar(l, 1.0 / beta);
        return Ops.Where(linear, x, soft);
    }

    /// <summary>Mish: x · tanh(softplus(x)) (torch.nn.functional.mish).</summary>
    public static Tensor Mish(Tensor x)
    {
        using var sp = Softplus(x);
        using var t = Ops.Tanh(sp);
        return Ops.Mul(x, t);
    }

    /// <summary>log σ(x) = −softplus(−x), stable for either sign (torch.nn.functional.logsigmoid).</summary>
    public static Tensor LogSigmoid(Tensor x)
    {
        using var n = Ops.Neg(x);
        using var sp = Softplus(n);
        return Ops.Neg(sp);
    }

    /// <summary>Hardtanh: x clamped into [min, max] (torch.nn.functional.hardtanh).</summary>
    public static Tensor Hardtanh(Tensor x, double min = -1.0, double max = 1.0) => Ops.Clamp(x, min, max);

    /// <summary>ReLU6: min(max(x, 0), 6) (torch.nn.functional.relu6).</summary>
    public static Tensor Relu6(Tensor x) => Ops.Clamp(x, 0, 6);

    /// <summary>Hardsigmoid: clamp(x + 3, 0, 6) / 6, PyTorch's arithmetic (torch.nn.functional.hardsigmoid).</summary>
    public static Tensor Hardsigmoid(Tensor x)
    {
        using var s = Ops.AddScalar(x, 3);
        using var h = Ops.Clamp(s, 0, 6);
        return Ops.DivScalar(h, 6);
    }

    /// <summary>Hardswish: x · hardsigmoid(x) (torch.nn.functional.hardswish).</summary>
    public static Tensor Hardswish(Tensor x)
    {
        using var h = Hardsigmoid(x);
        return Ops.Mul(x, h);
    }

    /// <summary>Softsign: x / (1 + |x|) (torch.nn.functional.softsign).</summary>
    public static Tensor Softsign(Tensor x)
    {
        using var a = Ops.Abs(x);
        using var d = Ops.AddScalar(a, 1);
        return Ops.Div(x, d);
    }

    /// <summary>GLU: the first half of <paramref name="dim"/> times σ of the second half (torch.nn.functional.glu); the
    /// dimension's size must be even.</summary>
    public static Tensor Glu(Tensor x, int dim = -1)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = dim < 0 ? dim + x.Rank : dim;
        if (d < 0 || d >= x.Rank || x.Shape[d] % 2 != 0)
            throw ShapeMismatchException.For("glu", $"dimension {dim} must exist and have an even size", x);
        int half = x.Shape[d] / 2;
        using var a = Ops.Narrow(x, d, 0, half);
        using var b = Ops.Narrow(x, d, half, half);
        using var g = Ops.Sigmoid(b);
        return Ops.Mul(a, g);
    }
}
