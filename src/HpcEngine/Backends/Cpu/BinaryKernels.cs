using System.Numerics;
using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

/// <summary>Broadcast binary arithmetic. Each row of the strided loop picks the widest path its strides allow:
/// span-span, span-scalar or scalar-span through TensorPrimitives (SIMD), else a scalar loop.</summary>
internal static unsafe class BinaryKernels
{
    public static void Run<T>(BinaryOp op, Tensor a, Tensor b, Tensor dst) where T : unmanaged, INumber<T>
    {
        var shape = dst.Shape;
        var loop = new StridedLoop(shape, dst.Strides.ToArray(),
            Shapes.BroadcastStrides(a.Shape, a.Strides, shape), Shapes.BroadcastStrides(b.Shape, b.Strides, shape));
        T* pa = a.Ptr<T>(), pb = b.Ptr<T>(), pd = dst.Ptr<T>();
        int sd = loop.Stride0, sa = loop.Stride1, sb = loop.Stride2;
        loop.Run((od, oa, ob, n) =>
        {
            T* x = pa + oa, y = pb + ob, d = pd + od;
            if (sd == 1)
            {
                var ds = new Span<T>(d, n);
                if (sa == 1 && sb == 1) { SpanSpan(op, new ReadOnlySpan<T>(x, n), new ReadOnlySpan<T>(y, n), ds); return; }
                if (sa == 1 && sb == 0) { SpanScalar(op, new ReadOnlySpan<T>(x, n), *y, ds); return; }
                if (sa == 0 && sb == 1) { ScalarSpan(op, *x, new ReadOnlySpan<T>(y, n), ds); return; }
            }
            for (int i = 0; i < n; i++) d[(long)i * sd] = Scalar(op, x[(long)i * sa], y[(long)i * sb]);
        });
    }

    private static T Scalar<T>(BinaryOp op, T x, T y) where T : INumber<T> => op switch
    {
        BinaryOp.Add => x + y,
        BinaryOp.Sub => x - y,
        BinaryOp.Mul => x * y,
        BinaryOp.Div => x / y,
        BinaryOp.Maximum => T.IsNaN(x) || T.IsNaN(y) ? x + y : T.Max(x, y),
        BinaryOp.Minimum => T.IsNaN(x) || T.IsNaN(y) ? x + y : T.Min(x, y),
        BinaryOp.Pow => PowScalar(x, y),
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };

    private static T PowScalar<T>(T x, T y) where T : INumber<T>
    {
        if (typeof(T) == typeof(float)) return (T)(object)MathF.Pow((float)(object)x, (float)(object)y);
        if (typeof(T) == typeof(double)) return (T)(object)Math.Pow((double)(object)x, (double)(object)y);
        return T.CreateTruncating(Math.Pow(double.CreateTruncating(x), double.CreateTruncating(y)));
    }

    private static void SpanSpan<T>(BinaryOp op, ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>
    {
        switch (op)
        {
            case BinaryOp.Add: TensorPrimitives.Add(x, y, d); break;
            case BinaryOp.Sub: TensorPrimitives.Subtract(x, y, d); break;
            case BinaryOp.Mul: TensorPrimitives.Multiply(x, y, d); break;
            case BinaryOp.Div when IsFloat<T>(): TensorPrimitives.Divide(x, y, d); break;
            case BinaryOp.Maximum: TensorPrimitives.Max(x, y, d); break;
            case BinaryOp.Minimum: TensorPrimitives.Min(x, y, d); break;
            default: for (int i = 0; i < d.Length; i++) d[i] = Scalar(op, x[i], y[i]); break;
        }
    }

    private static void SpanScalar<T>(BinaryOp op, ReadOnlySpan<T> x, T y, Span<T> d) where T : unmanaged, INumber<T>
    {
        switch (op)
        {
            case BinaryOp.Add: TensorPrimitives.Add(x, y, d); break;
            case BinaryOp.Sub: TensorPrimitives.Subtract(x, y, d); break;
            case BinaryOp.Mul: TensorPrimitives.Multiply(x, y, d); break;
            case BinaryOp.Div when IsFloat<T>(): TensorPrimitives.Multiply(x, T.One / y, d); break;
            case BinaryOp.Maximum: TensorPrimitives.Max(x, y, d); break;
            case BinaryOp.Minimum: TensorPrimitives.Min(x, y, d); break;
            default: for (int i = 0; i < d.Length; i++) d[i] = Scalar(op, x[i], y); break;
        }
    }

    private static void ScalarSpan<T>(BinaryOp op, T x, ReadOnlySpan<T> y, Span<T> d) where T : unmanaged, INumber<T>
    {
        switch (op)
        {
            case BinaryOp.Add: TensorPrimitives.Add(y, x, d); break;
            case BinaryOp.Sub: TensorPrimitives.Subtract(x, y, d); break;
            case BinaryOp.Mul: TensorPrimitives.Multiply(y, x, d); break;
            case BinaryOp.Div when IsFloat<T>(): TensorPrimitives.Divide(x, y, d); break;
            case BinaryOp.Maximum: TensorPrimitives.Max(y, x, d); break;
            case BinaryOp.Minimum: TensorPrimitives.Min(y, x, d); break;
            default: for (int i = 0; i < d.Length; i++) d[i] = Scalar(op, x, y[i]); break;
        }
    }

    private static bool IsFloat<T>() => typeof(T) == typeof(float) || typeof(T) == typeof(double);
}
