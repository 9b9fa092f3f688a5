using System.Numerics;
using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

/// <summary>An elementwise rule of two operands, as a struct type (TensorPrimitives' pattern): the generic driver
/// <see cref="BinaryDriver"/> is specialised per operator by the JIT, so the scalar path inlines the rule instead of
/// switching on the op for every element. The span overloads are the SIMD fast paths; an operator without one
/// returns false and the driver runs its scalar loop.</summary>
internal interface IBinaryOperator<TIn, TOut>
    where TIn : unmanaged
    where TOut : unmanaged
{
    static abstract TOut Invoke(TIn x, TIn y);

    static virtual bool TryVectorized(ReadOnlySpan<TIn> x, ReadOnlySpan<TIn> y, Span<TOut> d) => false;

    static virtual bool TryVectorized(ReadOnlySpan<TIn> x, TIn y, Span<TOut> d) => false;

    static virtual bool TryVectorized(TIn x, ReadOnlySpan<TIn> y, Span<TOut> d) => false;
}

/// <summary>The arithmetic rules of <see cref="BinaryOp"/>.</summary>
internal static class ArithmeticOperators
{
    public readonly struct Add<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y) => x + y;

        public static bool TryVectorized(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Add(x, y, d);
            return true;
        }

        public static bool TryVectorized(ReadOnlySpan<T> x, T y, Span<T> d)
        {
            TensorPrimitives.Add(x, y, d);
            return true;
        }

        public static bool TryVectorized(T x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Add(y, x, d);
            return true;
        }
    }

    public readonly struct Sub<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y) => x - y;

        public static bool TryVectorized(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Subtract(x, y, d);
            return true;
        }

        public static bool TryVectorized(ReadOnlySpan<T> x, T y, Span<T> d)
        {
            TensorPrimitives.Subtract(x, y, d);
            return true;
        }

        public static bool TryVectorized(T x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Subtract(x, y, d);
            return true;
        }
    }

    public readonly struct Mul<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y) => x * y;

        public static bool TryVectorized(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Multiply(x, y, d);
            return true;
        }

        public static bool TryVectorized(ReadOnlySpan<T> x, T y, Span<T> d)
        {
            TensorPrimitives.Multiply(x, y, d);
            return true;
        }

        public static bool TryVectorized(T x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Multiply(y, x, d);
            return true;
        }
    }

    /// <summary>Integer division truncates (C#'s rule) and has no SIMD path; float division by a scalar multiplies
    /// by its reciprocal, as before.</summary>
    public readonly struct Div<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y) => x / y;

        public static bool TryVectorized(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d)
        {
            if (!IsFloat<T>())
                return false;
            TensorPrimitives.Divide(x, y, d);
            return true;
        }

        public static bool TryVectorized(ReadOnlySpan<T> x, T y, Span<T> d)
        {
            if (!IsFloat<T>())
                return false;
            TensorPrimitives.Multiply(x, T.One / y, d);
            return true;
        }

        public static bool TryVectorized(T x, ReadOnlySpan<T> y, Span<T> d)
        {
            if (!IsFloat<T>())
                return false;
            TensorPrimitives.Divide(x, y, d);
            return true;
        }
    }

    /// <summary>NaN propagates (PyTorch's maximum): x + y is NaN when either is.</summary>
    public readonly struct Maximum<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y) => T.IsNaN(x) || T.IsNaN(y) ? x + y : T.Max(x, y);

        public static bool TryVectorized(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Max(x, y, d);
            return true;
        }

        public static bool TryVectorized(ReadOnlySpan<T> x, T y, Span<T> d)
        {
            TensorPrimitives.Max(x, y, d);
            return true;
        }

        public static bool TryVectorized(T x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Max(y, x, d);
            return true;
        }
    }

    public readonly struct Minimum<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y) => T.IsNaN(x) || T.IsNaN(y) ? x + y : T.Min(x, y);

        public static bool TryVectorized(ReadOnlySpan<T> x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Min(x, y, d);
            return true;
        }

        public static bool TryVectorized(ReadOnlySpan<T> x, T y, Span<T> d)
        {
            TensorPrimitives.Min(x, y, d);
            return true;
        }

        public static bool TryVectorized(T x, ReadOnlySpan<T> y, Span<T> d)
        {
            TensorPrimitives.Min(y, x, d);
            return true;
        }
    }

    public readonly struct Pow<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y)
        {
            if (typeof(T) == typeof(float))
                return (T)(object)MathF.Pow((float)(object)x, (float)(object)y);
            if (typeof(T) == typeof(double))
                return (T)(object)Math.Pow((double)(object)x, (double)(object)y);
            return T.CreateTruncating(Math.Pow(double.CreateTruncating(x), double.CreateTruncating(y)));
        }
    }

    public readonly struct Atan2<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T y, T x) =>
            typeof(T) == typeof(float)
                ? (T)(object)MathF.Atan2((float)(object)y, (float)(object)x)
                : T.CreateTruncating(Math.Atan2(double.CreateTruncating(y), double.CreateTruncating(x)));
    }

    /// <summary>C#'s % is C's fmod for floats and truncated division's remainder for integers: the dividend's sign.
    /// An integer divisor of 0 is refused (PyTorch raises too) rather than faulting.</summary>
    public readonly struct Fmod<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y)
        {
            if (!IsFloat<T>() && T.IsZero(y))
                throw new DivideByZeroException("fmod: integer division by zero");
            return x % y;
        }
    }

    /// <summary>PyTorch's rule: fmod, then moved by one divisor when its sign differs from the divisor's.</summary>
    public readonly struct Remainder<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y)
        {
            if (!IsFloat<T>() && T.IsZero(y))
                throw new DivideByZeroException("remainder: integer division by zero");
            T m = x % y;
            return !T.IsZero(m) && (T.IsNegative(m) != T.IsNegative(y)) ? m + y : m;
        }
    }

    public readonly struct CopySign<T> : IBinaryOperator<T, T>
        where T : unmanaged, INumber<T>
    {
        public static T Invoke(T x, T y) => T.CopySign(x, y);
    }

    private static bool IsFloat<T>() => typeof(T) == typeof(float) || typeof(T) == typeof(double);
}

/// <summary>The rules of <see cref="CompareOp"/>: a bool result stored as one byte (0 or 1).</summary>
internal static class CompareOperators
{
    public readonly struct Eq<T> : IBinaryOperator<T, byte>
        where T : unmanaged, INumber<T>
    {
        public static byte Invoke(T x, T y) => x == y ? (byte)1 : (byte)0;
    }

    public readonly struct Ne<T> : IBinaryOperator<T, byte>
        where T : unmanaged, INumber<T>
    {
        public static byte Invoke(T x, T y) => x != y ? (byte)1 : (byte)0;
    }

    public readonly struct Lt<T> : IBinaryOperator<T, byte>
        where T : unmanaged, INumber<T>
    {
        public static byte Invoke(T x, T y) => x < y ? (byte)1 : (byte)0;
    }

    public readonly struct Le<T> : IBinaryOperator<T, byte>
        where T : unmanaged, INumber<T>
    {
        public static byte Invoke(T x, T y) => x <= y ? (byte)1 : (byte)0;
    }

    public readonly struct Gt<T> : IBinaryOperator<T, byte>
        where T : unmanaged, INumber<T>
    {
        public static byte Invoke(T x, T y) => x > y ? (byte)1 : (byte)0;
    }

    public readonly struct Ge<T> : IBinaryOperator<T, byte>
        where T : unmanaged, INumber<T>
    {
        public static byte Invoke(T x, T y) => x >= y ? (byte)1 : (byte)0;
    }

    public readonly struct And<T> : IBinaryOperator<T, byte>
        where T : unmanaged, INumber<T>
    {
        public static byte Invoke(T x, T y) => x != T.Zero && y != T.Zero ? (byte)1 : (byte)0;
    }

    public readonly struct Or<T> : IBinaryOperator<T, byte>
        where T : unmanaged, INumber<T>
    {
        public static byte Invoke(T x, T y) => x != T.Zero || y != T.Zero ? (byte)1 : (byte)0;
    }

    public readonly struct Xor<T> : IBinaryOperator<T, byte>
        where T : unmanaged, INumber<T>
    {
        public static byte Invoke(T x, T y) => (x != T.Zero) ^ (y != T.Zero) ? (byte)1 : (byte)0;
    }
}
