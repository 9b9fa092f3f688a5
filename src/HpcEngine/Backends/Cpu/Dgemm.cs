using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

/// <summary>Double-precision GEMM: exists so gradients can be checked in float64, not for speed. Row-of-C at a time:
/// C[i, :] += A[i, k] * B[k, :] with B made row-contiguous first.</summary>
internal static unsafe class Dgemm
{
    public static void Run(
        int m,
        int n,
        int k,
        double* a,
        int rsA,
        int csA,
        double* b,
        int rsB,
        int csB,
        double* c,
        int ldc,
        bool accumulate
    )
    {
        var bc = RowContiguous(n, k, b, rsB, csB);
        CpuThreads.For(m, 2L * m * n * k, (s, e) => Rows(s, e, n, k, a, rsA, csA, bc, c, ldc, accumulate));
    }

    /// <summary><see cref="Run"/> on the calling thread only, for callers that split work over threads
    /// themselves.</summary>
    public static void RunSerial(
        int m,
        int n,
        int k,
        double* a,
        int rsA,
        int csA,
        double* b,
        int rsB,
        int csB,
        double* c,
        int ldc,
        bool accumulate
    )
    {
        var bc = RowContiguous(n, k, b, rsB, csB);
        Rows(0, m, n, k, a, rsA, csA, bc, c, ldc, accumulate);
    }

    /// <summary>B [k, n] (any strides) copied row-major.</summary>
    private static double[] RowContiguous(int n, int k, double* b, int rsB, int csB)
    {
        var bc = new double[(long)k * n];
        for (int p = 0; p < k; p++)
        for (int j = 0; j < n; j++)
            bc[(long)p * n + j] = b[(long)p * rsB + (long)j * csB];
        return bc;
    }

    /// <summary>Rows [s, e) of C (+)= A · B, B already row-contiguous.</summary>
    private static void Rows(
        int s,
        int e,
        int n,
        int k,
        double* a,
        int rsA,
        int csA,
        double[] bc,
        double* c,
        int ldc,
        bool accumulate
    )
    {
        for (int i = s; i < e; i++)
        {
            var row = new Span<double>(c + (long)i * ldc, n);
            if (!accumulate)
                row.Clear();
            for (int p = 0; p < k; p++)
                TensorPrimitives.MultiplyAdd(
                    new ReadOnlySpan<double>(bc, p * n, n),
                    a[(long)i * rsA + (long)p * csA],
                    row,
                    row
                );
        }
    }
}
