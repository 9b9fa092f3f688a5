using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine;

public static partial class Ops
{
    /// <summary>Elementwise a + b, broadcasting (NumPy rules); the result dtype is the promoted one.</summary>
    public static Tensor Add(Tensor a, Tensor b) => Binary(BinaryOp.Add, "add", a, b);

    /// <summary>Elementwise a − b, broadcasting.</summary>
    public static Tensor Sub(Tensor a, Tensor b) => Binary(BinaryOp.Sub, "sub", a, b);

    /// <summary>Elementwise a · b, broadcasting.</summary>
    public static Tensor Mul(Tensor a, Tensor b) => Binary(BinaryOp.Mul, "mul", a, b);

    /// <summary>Elementwise a / b, broadcasting (integer tensors divide with truncation).</summary>
    public static Tensor Div(Tensor a, Tensor b) => Binary(BinaryOp.Div, "div", a, b);

    /// <summary>Elementwise maximum (NaN propagates).</summary>
    public static Tensor Maximum(Tensor a, Tensor b) => Binary(BinaryOp.Maximum, "maximum", a, b);

    /// <summary>Elementwise minimum (NaN propagates).</summary>
    public static Tensor Minimum(Tensor a, Tensor b) => Binary(BinaryOp.Minimum, "minimum", a, b);

    /// <summary>a raised to b, elementwise.</summary>
    public static Tensor Pow(Tensor a, Tensor b) => Binary(BinaryOp.Pow, "pow", a, b);

    /// <summary>Applies a binary op with broadcasting and dtype promotion, without recording.</summary>
    internal static Tensor BinaryNoGrad(BinaryOp op, string name, Tensor a, Tensor b)
    {
        var device = DeviceOf(name, a, b);
        var dtype = OperandType(a, b, device);
        var compute = dtype.ComputeType();
        if (compute is DType.Bool or DType.UInt8)
            compute = DType.Int32;
        if (op == BinaryOp.Pow && !compute.IsFloating())
            compute = DType.Float64;
        var shape = Shapes.Broadcast(name, a.Shape, b.Shape);
        using var ac = OnDevice(a, device, compute);
        using var bc = OnDevice(b, device, compute);
        using var ae = Expanded(ac, shape);
        using var be = Expanded(bc, shape);
        var r = Tensor.Empty(shape, compute, device);
        r.Backend.Binary(op, ae, be, r);
        if (compute == dtype)
            return r;
        using (r)
            return ToDType(r, dtype, false);
    }

    private static Tensor Binary(BinaryOp op, string name, Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var r = BinaryNoGrad(op, name, a, b);
        if (!Recorder.Needs(a, b))
            return r;
        int[] sa = a.ShapeArray,
            sb = b.ShapeArray;
        bool ga = a.NeedsGrad,
            gb = b.NeedsGrad;
        switch (op)
        {
            case BinaryOp.Add:
                return Recorder.Record(r, name, [a, b], g => [ga ? SumTo(g, sa) : null, gb ? SumTo(g, sb) : null]);
            case BinaryOp.Sub:
                return Recorder.Record(r, name, [a, b], g =>
                    [ga ? SumTo(g, sa) : null, gb ? SumToOwned(Neg(g), sb) : null]
                );
            case BinaryOp.Mul:
                return Recorder.Record(r, name, [a, b], [a, b], (g, s) =>
                    [ga ? SumToOwned(Mul(g, s[1]), sa) : null, gb ? SumToOwned(Mul(g, s[0]), sb) : null]
                );
            case BinaryOp.Div:
                return Recorder.Record(r, name, [a, b], [a, b], (g, s) =>
                {
                    Tensor? da = ga ? SumToOwned(Div(g, s[1]), sa) : null;
                    Tensor? db = null;
                    if (gb)
                    {
                        // d(a/b)/db = -a / b^2
                        using var b2 = Mul(s[1], s[1]);
                        using var q = Div(s[0], b2);
                        using var gq = Mul(g, q);
                        db = SumToOwned(Neg(gq), sb);
                    }
                    return [da, db];
                });
            case BinaryOp.Maximum:
            case BinaryOp.Minimum:
                return Recorder.Record(r, name, [a, b], [a, b], (g, s) =>
                {
                    // The gradient goes to the selected input; ties split it evenly, as PyTorch does.
                    using var pick = op == BinaryOp.Maximum ? Gt(s[0], s[1]) : Lt(s[0], s[1]);
                    using var tie = Eq(s[0], s[1]);
                    using var pa = To(pick, g.DType);
                    using var ta = To(tie, g.DType);
                    using var half = MulScalar(ta, 0.5);
                    using var wa = Add(pa, half);
                    using var one = Tensor.OnesLike(wa);
                    using var wb = Sub(one, wa);
                    return [ga ? SumToOwned(Mul(g, wa), sa) : null, gb ? SumToOwned(Mul(g, wb), sb) : null];
                });
            case BinaryOp.Pow:
                return Recorder.Record(r, name, [a, b], [a, b, r], (g, s) =>
                {
                    Tensor? da = null,
                        db = null;
                    if (ga)
                    {
                        using var bm1 = AddScalar(s[1], -1);
                        using var p = Pow(s[0], bm1);
                        using var bp = Mul(s[1], p);
                        da = SumToOwned(Mul(g, bp), sa);
                    }
                    if (gb)
                    {
                        using var la = Log(s[0]);
                        using var rl = Mul(s[2], la);
                        db = SumToOwned(Mul(g, rl), sb);
                    }
                    return [da, db];
                });
            default:
                return RecordMathBinary(op, name, r, a, b);
        }
    }

    /// <summary>Sums a broadcast gradient back to the shape of the input it came from.</summary>
    internal static Tensor SumTo(Tensor g, int[] shape)
    {
        if (g.Shape.SequenceEqual(shape))
            return g;
        int lead = g.Rank - shape.Length;
        var dims = new List<int>();
        for (int i = 0; i < g.Rank; i++)
            if (i < lead || (shape[i - lead] == 1 && g.Shape[i] != 1))
                dims.Add(i);
        using var s = Sum(g, dims.ToArray(), keepDim: true);
        return Reshape(s, shape);
    }

    /// <summary><see cref="SumTo"/> that disposes its input when it made a new tensor.</summary>
    internal static Tensor SumToOwned(Tensor g, int[] shape)
    {
        var r = SumTo(g, shape);
        if (!ReferenceEquals(r, g))
            g.Dispose();
        return r;
    }

    /// <summary>a + s for every element.</summary>
    public static Tensor AddScalar(Tensor a, double s)
    {
        using var t = ScalarFor(a, s);
        return Add(a, t);
    }

    /// <summary>a · s for every element.</summary>
    public static Tensor MulScalar(Tensor a, double s)
    {
        using var t = ScalarFor(a, s);
        return Mul(a, t);
    }

    /// <summary>a / s for every element.</summary>
    public static Tensor DivScalar(Tensor a, double s)
    {
        using var t = ScalarFor(a, s);
        return Div(a, t);
    }

    /// <summary>s − a for every element.</summary>
    public static Tensor RSubScalar(double s, Tensor a)
    {
        using var t = ScalarFor(a, s);
        return Sub(t, a);
    }

    // ---- unary ----

    /// <summary>−x elementwise.</summary>
    public static Tensor Neg(Tensor x) => Unary(UnaryOp.Neg, "neg", x);

    /// <summary>|x| elementwise (gradient 0 at 0, as PyTorch).</summary>
    public static Tensor Abs(Tensor x) => Unary(UnaryOp.Abs, "abs", x);

    /// <summary>eˣ elementwise.</summary>
    public static Tensor Exp(Tensor x) => Unary(UnaryOp.Exp, "exp", x);

    /// <summary>Natural logarithm elementwise (NaN below 0, −∞ at 0).</summary>
    public static Tensor Log(Tensor x) => Unary(UnaryOp.Log, "log", x);

    /// <summary>ln(1 + x) elementwise, accurate for small x.</summary>
    public static Tensor Log1p(Tensor x) => Unary(UnaryOp.Log1p, "log1p", x);

    /// <summary>√x elementwise.</summary>
    public static Tensor Sqrt(Tensor x) => Unary(UnaryOp.Sqrt, "sqrt", x);

    /// <summary>1/√x elementwise.</summary>
    public static Tensor Rsqrt(Tensor x) => Unary(UnaryOp.Rsqrt, "rsqrt", x);

    /// <summary>Hyperbolic tangent elementwise.</summary>
    public static Tensor Tanh(Tensor x) => Unary(UnaryOp.Tanh, "tanh", x);

    /// <summary>Logistic sigmoid 1/(1 + e⁻ˣ) elementwise.</summary>
    public static Tensor Sigmoid(Tensor x) => Unary(UnaryOp.Sigmoid, "sigmoid", x);

    /// <summary>max(x, 0) elementwise.</summary>
    public static Tensor Relu(Tensor x) => Unary(UnaryOp.Relu, "relu", x);

    /// <summary>x · sigmoid(x) (swish) elementwise.</summary>
    public static Tensor Silu(Tensor x) => Unary(UnaryOp.Silu, "silu", x);

    /// <summary>−1, 0 or 1 by the sign of each element (gradient 0).</summary>
    public static Tensor Sign(Tensor x) => Unary(UnaryOp.Sign, "sign", x);

    /// <summary>1/x elementwise.</summary>
    public static Tensor Reciprocal(Tensor x) => Unary(UnaryOp.Reciprocal, "reciprocal", x);

    /// <summary>x for x ≥ 0, else negativeSlope · x.</summary>
    public static Tensor LeakyRelu(Tensor x, double negativeSlope = 0.01) =>
        Unary(UnaryOp.LeakyRelu, "leaky_relu", x, negativeSlope);

    /// <summary>GELU; <paramref name="approximate"/> "none" is the exact erf form, "tanh" the tanh
    /// approximation.</summary>
    public static Tensor Gelu(Tensor x, string approximate = "none") =>
        approximate switch
        {
            "none" => Unary(UnaryOp.Gelu, "gelu", x),
            "tanh" => Unary(UnaryOp.GeluTanh, "gelu", x),
            _ => throw new ArgumentException(
                $"gelu: approximate must be 'none' or 'tanh', got '{approximate}'",
                nameof(approximate)
            ),
        };

    /// <summary>x raised to a constant power.</summary>
    public static Tensor Pow(Tensor x, double exponent) => Unary(UnaryOp.PowScalar, "pow", x, exponent);

    private static Tensor Unary(UnaryOp op, string name, Tensor x, double alpha = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        x.CheckAlive();
        var dtype =
            x.DType.IsFloating() ? x.DType
            : op is UnaryOp.Neg or UnaryOp.Abs ? x.DType
            : DType.Float32;
        var compute = dtype.ComputeType();
        if (!compute.IsFloating())
        {
            // Integer neg/abs: exact through int64.
            using var xl = ToDType(x, DType.Float64, false);
            using var rr = Unary(op, name, xl, alpha);
            return ToDType(rr, dtype, false);
        }
        using var xc0 = ToDType(x, compute, false);
        using var xc = xc0.Contiguous();
        var r = Tensor.Empty(x.Shape, compute, x.Device);
        x.Backend.Unary(op, xc, r, alpha);
        if (compute != dtype)
        {
            r = r.Replace(ToDType(r, dtype, false));
        }
        if (!Recorder.Needs(x))
            return r;
        return Recorder.Record(r, name, [x], [x, r], (g, s) => [UnaryBackward(op, s[0], s[1], g, alpha)]);
    }

    private static Tensor UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor g, double alpha)
    {
        var compute = x.DType.ComputeType();
        using var xc = ToDType(x, compute, false).ContiguousOwned();
        using var yc = ToDType(y, compute, false).ContiguousOwned();
        using var gc = ToDType(g, compute, false).ContiguousOwned();
        var dx = Tensor.Empty(x.Shape, compute, x.Device);
        x.Backend.UnaryBackward(op, xc, yc, gc, dx, alpha);
        if (compute == x.DType)
            return dx;
        using (dx)
            return ToDType(dx, x.DType, false);
    }

    /// <summary>Clamps into [min, max] (either bound may be omitted).</summary>
    public static Tensor Clamp(Tensor x, double? min = null, double? max = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        double lo = min ?? double.NegativeInfinity,
            hi = max ?? double.PositiveInfinity;
        if (lo > hi)
            throw new ArgumentException($"clamp: min ({lo}) is greater than max ({hi})", nameof(min));
        var compute = x.DType.ComputeType();
        using var xc = ToDType(x, compute, false).ContiguousOwned();
        var r = Tensor.Empty(x.Shape, compute, x.Device);
        x.Backend.Clamp(xc, r, lo, hi);
        if (compute != x.DType)
            r = r.Replace(ToDType(r, x.DType, false));
        if (!Recorder.Needs(x))
            return r;
        return Recorder.Record(r, "clamp", [x], [x], (g, s) =>
        {
            using var above = GeScalar(s[0], lo);
            using var below = LeScalar(s[0], hi);
            using var inside = LogicalAnd(above, below);
            using var m = To(inside, g.DType);
            return [Mul(g, m)];
        });
    }
}

internal static class OwnedExtensions
{
    /// <summary>Disposes <paramref name="old"/> and returns <paramref name="replacement"/> (computed from it first):
    /// <c>y = y.Replace(Convert(y))</c>.</summary>
    public static Tensor Replace(this Tensor old, Tensor replacement)
    {
        if (!ReferenceEquals(old, replacement))
            old.Dispose();
        return replacement;
    }

    /// <summary>Makes <paramref name="t"/> contiguous, disposing the original handle when a copy was made.</summary>
    public static Tensor ContiguousOwned(this Tensor t)
    {
        if (t.IsContiguous)
            return t;
        using (t)
            return t.Contiguous();
    }
}
