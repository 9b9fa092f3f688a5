using System.Numerics;

namespace HpcEngine.Backends.Cpu;

/// <summary>Inclusive scans of a contiguous [outer, n, inner] block along n: one sequential pass per (outer, inner)
/// line (the order PyTorch's CPU kernels add in), lines across threads.</summary>
internal static unsafe class ScanKernels
{
    /// <summary>Running sum or product of every line.</summary>
    public static void Accumulate<T>(T* x, T* y, int outer, int n, int inner, bool product)
        where T : unmanaged, INumber<T>
    {
        ForEachLine(outer, n, inner, (start) =>
        {
            T acc = product ? T.One : T.Zero;
            for (int k = 0; k < n; k++)
            {
                long at = start + (long)k * inner;
                acc = product ? acc * x[at] : acc + x[at];
                y[at] = acc;
            }
        });
    }

    /// <summary>Running float32 sum or product accumulated in float64, as PyTorch's CPU kernels do (its accumulate
    /// type for float), so long lines do not drift.</summary>
    public static void AccumulateWide(float* x, float* y, int outer, int n, int inner, bool product)
    {
        ForEachLine(outer, n, inner, (start) =>
        {
            double acc = product ? 1 : 0;
            for (int k = 0; k < n; k++)
            {
                long at = start + (long)k * inner;
                acc = product ? acc * x[at] : acc + x[at];
                y[at] = (float)acc;
            }
        });
    }

    /// <summary>Running max (or min) with the index of the last extreme so far: x replaces the running value when
    /// it is NaN, or when neither is NaN and x ≥ it (≤ for min) — PyTorch's rule, so a NaN sticks and ties move the
    /// index on.</summary>
    public static void Extreme<T>(T* x, T* y, long* indices, int outer, int n, int inner, bool max)
        where T : unmanaged, INumber<T>
    {
        ForEachLine(outer, n, inner, (start) =>
        {
            T best = T.Zero;
            long at0 = -1;
            for (int k = 0; k < n; k++)
            {
                long at = start + (long)k * inner;
                T v = x[at];
                if (k == 0 || T.IsNaN(v) || (!T.IsNaN(best) && (max ? v >= best : v <= best)))
                {
                    best = v;
                    at0 = k;
                }
                y[at] = best;
                if (indices != null)
                    indices[at] = at0;
            }
        });
    }

    /// <summary>Running log Σ exp of every line.</summary>
    public static void LogSumExp<T>(T* x, T* y, int outer, int n, int inner)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ForEachLine(outer, n, inner, (start) =>
        {
            T acc = T.NegativeInfinity;
            for (int k = 0; k < n; k++)
            {
                long at = start + (long)k * inner;
                acc = LogAddExp(acc, x[at]);
                y[at] = acc;
            }
        });
    }

    /// <summary>log(eᵃ + eᵇ) without overflow: the larger plus log1p of the other's ratio; an infinite larger one
    /// (both −∞, or a +∞) is the answer itself.</summary>
    internal static T LogAddExp<T>(T a, T b)
        where T : IFloatingPointIeee754<T>
    {
        if (T.IsNaN(a) || T.IsNaN(b))
            return T.NaN;
        T m = T.Max(a, b);
        if (T.IsInfinity(m))
            return m;
        return m + T.LogP1(T.Exp(-T.Abs(a - b)));
    }

    private static void ForEachLine(int outer, int n, int inner, Action<long> line)
    {
        long lines = (long)outer * inner;
        if (lines == 0 || n == 0)
            return;
        CpuThreads.For((int)lines, lines * n, (s, e) =>
        {
            for (int l = s; l < e; l++)
                line((long)(l / inner) * n * inner + l % inner);
        });
    }
}
