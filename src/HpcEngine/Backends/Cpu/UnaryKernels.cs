using System.Numerics;
using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

/// <summary>Forward and backward of the unary ops over contiguous memory, split across threads. The forward uses
/// TensorPrimitives (SIMD) where it has the function; the backward fuses g * f'(x) into one pass.</summary>
internal static unsafe class UnaryKernels
{
    private const double SqrtTwoOverPi = 0.7978845608028654,
        GeluC = 0.044715,
        InvSqrt2 = 0.7071067811865476,
        InvSqrt2Pi = 0.3989422804014327,
        TwoOverSqrtPi = 1.1283791670955126,
        Ln2 = 0.6931471805599453,
        Ln10 = 2.302585092994046;

    public static void Forward<T>(UnaryOp op, Tensor x, Tensor y, double alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T* px = x.Ptr<T>(),
            py = y.Ptr<T>();
        int n = x.NumEl;
        CpuThreads.For(n, n * 4L, (s, e) =>
        {
            var xs = new ReadOnlySpan<T>(px + s, e - s);
            var ys = new Span<T>(py + s, e - s);
            T a = T.CreateChecked(alpha);
            switch (op)
            {
                case UnaryOp.Neg:
                    TensorPrimitives.Negate(xs, ys);
                    break;
                case UnaryOp.Abs:
                    TensorPrimitives.Abs(xs, ys);
                    break;
                case UnaryOp.Exp:
                    TensorPrimitives.Exp(xs, ys);
                    break;
                case UnaryOp.Log:
                    TensorPrimitives.Log(xs, ys);
                    break;
                case UnaryOp.Sqrt:
                    TensorPrimitives.Sqrt(xs, ys);
                    break;
                case UnaryOp.Tanh:
                    TensorPrimitives.Tanh(xs, ys);
                    break;
                case UnaryOp.Sigmoid:
                    TensorPrimitives.Sigmoid(xs, ys);
                    break;
                case UnaryOp.Relu:
                    TensorPrimitives.Max(xs, T.Zero, ys);
                    break;
                case UnaryOp.Reciprocal:
                    TensorPrimitives.Reciprocal(xs, ys);
                    break;
                case UnaryOp.Sin:
                    TensorPrimitives.Sin(xs, ys);
                    break;
                case UnaryOp.Cos:
                    TensorPrimitives.Cos(xs, ys);
                    break;
                case UnaryOp.Tan:
                    TensorPrimitives.Tan(xs, ys);
                    break;
                case UnaryOp.Asin:
                    TensorPrimitives.Asin(xs, ys);
                    break;
                case UnaryOp.Acos:
                    TensorPrimitives.Acos(xs, ys);
                    break;
                case UnaryOp.Atan:
                    TensorPrimitives.Atan(xs, ys);
                    break;
                case UnaryOp.Sinh:
                    TensorPrimitives.Sinh(xs, ys);
                    break;
                case UnaryOp.Cosh:
                    TensorPrimitives.Cosh(xs, ys);
                    break;
                case UnaryOp.Expm1:
                    TensorPrimitives.ExpM1(xs, ys);
                    break;
                case UnaryOp.Log2:
                    TensorPrimitives.Log2(xs, ys);
                    break;
                case UnaryOp.Log10:
                    TensorPrimitives.Log10(xs, ys);
                    break;
                case UnaryOp.Floor:
                    TensorPrimitives.Floor(xs, ys);
                    break;
                case UnaryOp.Ceil:
                    TensorPrimitives.Ceiling(xs, ys);
                    break;
                case UnaryOp.Round:
                    TensorPrimitives.Round(xs, MidpointRounding.ToEven, ys);
                    break;
                case UnaryOp.Trunc:
                    TensorPrimitives.Truncate(xs, ys);
                    break;
                default:
                    for (int i = 0; i < xs.Length; i++)
                        ys[i] = Scalar(op, xs[i], a);
                    break;
            }
        });
    }

    private static T Scalar<T>(UnaryOp op, T x, T alpha)
        where T : IFloatingPointIeee754<T> =>
        op switch
        {
            UnaryOp.Log1p => T.LogP1(x),
            UnaryOp.Rsqrt => T.One / T.Sqrt(x),
            UnaryOp.LeakyRelu => x > T.Zero ? x : x * alpha,
            UnaryOp.Gelu => T.CreateTruncating(0.5)
                * x
                * (T.One + T.CreateTruncating(SpecialFunctions.Erf(double.CreateTruncating(x) * InvSqrt2))),
            UnaryOp.GeluTanh => T.CreateTruncating(0.5)
                * x
                * (T.One + T.Tanh(T.CreateTruncating(SqrtTwoOverPi) * (x + T.CreateTruncating(GeluC) * x * x * x))),
            UnaryOp.Silu => x / (T.One + T.Exp(-x)),
            UnaryOp.PowScalar => T.Pow(x, alpha),
            UnaryOp.Sign => T.IsNaN(x) ? x : T.CreateTruncating(T.Sign(x)),
            UnaryOp.Erf => T.CreateTruncating(SpecialFunctions.Erf(double.CreateTruncating(x))),
            UnaryOp.Erfinv => T.CreateTruncating(SpecialFunctions.Erfinv(double.CreateTruncating(x))),
            _ => throw new ArgumentOutOfRangeException(nameof(op), $"internal: no scalar form for {op}"),
        };

    /// <summary>dx = g * f'(x), using the saved output y where the derivative is cheaper from it.</summary>
    public static void Backward<T>(UnaryOp op, Tensor x, Tensor y, Tensor g, Tensor dx, double alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T* px = x.Ptr<T>(),
            py = y.Ptr<T>(),
            pg = g.Ptr<T>(),
            pd = dx.Ptr<T>();
        int n = x.NumEl;
        T a = T.CreateTruncating(alpha),
            half = T.CreateTruncating(0.5),
            two = T.CreateTruncating(2);
        CpuThreads.For(n, n * 8L, (s, e) =>
        {
            // The hot rules get their own loops (the JIT cannot hoist a per-element switch out of the loop).
            switch (op)
            {
                case UnaryOp.Relu:
                    ReluBackward(px + s, pg + s, pd + s, e - s);
                    return;
                case UnaryOp.Tanh:
                    for (int i = s; i < e; i++)
                        pd[i] = pg[i] * (T.One - py[i] * py[i]);
                    return;
                case UnaryOp.Sigmoid:
                    for (int i = s; i < e; i++)
                        pd[i] = pg[i] * py[i] * (T.One - py[i]);
                    return;
                case UnaryOp.Exp:
                    TensorPrimitives.Multiply(
                        new ReadOnlySpan<T>(pg + s, e - s),
                        new ReadOnlySpan<T>(py + s, e - s),
                        new Span<T>(pd + s, e - s)
                    );
                    return;
            }
            for (int i = s; i < e; i++)
            {
                T xi = px[i],
                    yi = py[i],
                    gi = pg[i];
                pd[i] = op switch
                {
                    UnaryOp.Neg => -gi,
                    UnaryOp.Abs => gi * T.CreateTruncating(T.Sign(xi)),
                    UnaryOp.Exp => gi * yi,
                    UnaryOp.Log => gi / xi,
                    UnaryOp.Log1p => gi / (T.One + xi),
                    UnaryOp.Sqrt => gi / (two * yi),
                    UnaryOp.Rsqrt => -half * gi * yi * yi * yi,
                    UnaryOp.Tanh => gi * (T.One - yi * yi),
                    UnaryOp.Sigmoid => gi * yi * (T.One - yi),
                    UnaryOp.Relu => xi > T.Zero ? gi : T.Zero,
                    UnaryOp.LeakyRelu => xi > T.Zero ? gi : gi * a,
                    UnaryOp.Gelu => gi * GeluGrad(xi),
                    UnaryOp.GeluTanh => gi * GeluTanhGrad(xi),
                    UnaryOp.Silu => gi * SiluGrad(xi),
                    UnaryOp.PowScalar => gi * a * T.Pow(xi, a - T.One),
                    UnaryOp.Sign => T.Zero,
                    UnaryOp.Reciprocal => -gi * yi * yi,
                    UnaryOp.Sin => gi * T.Cos(xi),
                    UnaryOp.Cos => -gi * T.Sin(xi),
                    UnaryOp.Tan => gi * (T.One + yi * yi),
                    UnaryOp.Asin => gi / T.Sqrt(T.One - xi * xi),
                    UnaryOp.Acos => -gi / T.Sqrt(T.One - xi * xi),
                    UnaryOp.Atan => gi / (T.One + xi * xi),
                    UnaryOp.Sinh => gi * T.Cosh(xi),
                    UnaryOp.Cosh => gi * T.Sinh(xi),
                    UnaryOp.Erf => gi * T.CreateTruncating(TwoOverSqrtPi) * T.Exp(-xi * xi),
                    UnaryOp.Erfinv => gi / T.CreateTruncating(TwoOverSqrtPi) * T.Exp(yi * yi),
                    UnaryOp.Expm1 => gi * (yi + T.One),
                    UnaryOp.Log2 => gi / (xi * T.CreateTruncating(Ln2)),
                    UnaryOp.Log10 => gi / (xi * T.CreateTruncating(Ln10)),
                    UnaryOp.Floor or UnaryOp.Ceil or UnaryOp.Round or UnaryOp.Trunc => T.Zero, // as PyTorch
                    _ => throw new ArgumentOutOfRangeException(nameof(op)),
                };
            }
        });
    }

    /// <summary>d = x &gt; 0 ? g : 0, eight floats at a time (a compare mask ANDed with g).</summary>
    private static void ReluBackward<T>(T* x, T* g, T* d, int n)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0;
        if (typeof(T) == typeof(float) && System.Runtime.Intrinsics.X86.Avx.IsSupported)
        {
            float* xf = (float*)x,
                gf = (float*)g,
                df = (float*)d;
            var zero = System.Runtime.Intrinsics.Vector256<float>.Zero;
            for (; i <= n - 8; i += 8)
            {
                var mask = System.Runtime.Intrinsics.X86.Avx.CompareGreaterThan(
                    System.Runtime.Intrinsics.X86.Avx.LoadVector256(xf + i),
                    zero
                );
                System.Runtime.Intrinsics.X86.Avx.Store(
                    df + i,
                    System.Runtime.Intrinsics.X86.Avx.And(mask, System.Runtime.Intrinsics.X86.Avx.LoadVector256(gf + i))
                );
            }
        }
        for (; i < n; i++)
            d[i] = x[i] > T.Zero ? g[i] : T.Zero;
    }

    private static T GeluGrad<T>(T x)
        where T : IFloatingPointIeee754<T>
    {
        double xd = double.CreateTruncating(x);
        double cdf = 0.5 * (1 + SpecialFunctions.Erf(xd * InvSqrt2));
        return T.CreateTruncating(cdf + xd * InvSqrt2Pi * Math.Exp(-0.5 * xd * xd));
    }

    private static T GeluTanhGrad<T>(T x)
        where T : IFloatingPointIeee754<T>
    {
        double xd = double.CreateTruncating(x);
        double inner = SqrtTwoOverPi * (xd + GeluC * xd * xd * xd);
        double t = Math.Tanh(inner);
        return T.CreateTruncating(0.5 * (1 + t) + 0.5 * xd * (1 - t * t) * SqrtTwoOverPi * (1 + 3 * GeluC * xd * xd));
    }

    private static T SiluGrad<T>(T x)
        where T : IFloatingPointIeee754<T>
    {
        T s = T.One / (T.One + T.Exp(-x));
        return s * (T.One + x * (T.One - s));
    }

    /// <summary>y = min(max(x, lo), hi) over contiguous memory.</summary>
    public static void Clamp<T>(Tensor x, Tensor y, double lo, double hi)
        where T : unmanaged, INumber<T>
    {
        T* px = x.Ptr<T>(),
            py = y.Ptr<T>();
        T l = T.CreateSaturating(lo),
            h = T.CreateSaturating(hi);
        int n = x.NumEl;
        CpuThreads.For(n, n, (s, e) =>
        {
            var ys = new Span<T>(py + s, e - s);
            if (!double.IsNegativeInfinity(lo))
                TensorPrimitives.Max(new ReadOnlySpan<T>(px + s, e - s), l, ys);
            else
                new ReadOnlySpan<T>(px + s, e - s).CopyTo(ys);
            if (!double.IsPositiveInfinity(hi))
                TensorPrimitives.Min(ys, h, ys);
        });
    }
}
