using System.Runtime.InteropServices;

namespace HpcEngine.Backends.Cpu;

/// <summary>GEMMs with a small output and a long inner dimension, split over k.</summary>
internal static unsafe partial class Sgemm
{
    /// <summary>Outputs up to this many elements with a long inner dimension split it over threads instead (a
    /// convolution's weight gradient: 32×9 outputs summed over 100,000 positions has no rows or columns to share).</summary>
    private const long SplitKMaxOutput = 64 * 64;

    /// <summary>Each thread multiplies its own range of k into a private C; the partial Cs are summed in thread order
    /// (the same order every call: the result does not depend on timing).</summary>
    private static void SplitK(
        int threads,
        int m,
        int n,
        int k,
        float* a,
        int rsA,
        int csA,
        float* b,
        int rsB,
        int csB,
        float* c,
        int ldc,
        bool accumulate
    )
    {
        int size = m * n;
        float* partial = (float*)NativeMemory.AlignedAlloc((nuint)((long)threads * size * sizeof(float)), 64);
        try
        {
            ForkJoinPool.Shared.Run(threads, t =>
            {
                int k0 = (int)((long)k * t / threads),
                    k1 = (int)((long)k * (t + 1) / threads);
                Serial(
                    m,
                    n,
                    k1 - k0,
                    a + (long)k0 * csA,
                    rsA,
                    csA,
                    b + (long)k0 * rsB,
                    rsB,
                    csB,
                    partial + (long)t * size,
                    n,
                    false
                );
            });
            for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float sum = accumulate ? c[(long)i * ldc + j] : 0f;
                for (int t = 0; t < threads; t++)
                    sum += partial[(long)t * size + i * n + j];
                c[(long)i * ldc + j] = sum;
            }
        }
        finally
        {
            NativeMemory.AlignedFree(partial);
        }
    }
}
