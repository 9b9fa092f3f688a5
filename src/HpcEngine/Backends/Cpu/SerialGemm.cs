namespace HpcEngine.Backends.Cpu;

/// <summary>A GEMM on the calling thread alone, float32 or float64: for kernels that already split their work over
/// threads (each thread's GEMM must not fork again).</summary>
internal static unsafe class SerialGemm
{
    /// <summary>C[i, j] (+)= Σ_k A[i·rsA + k·csA] · B[k·rsB + j·csB]; C row-major with leading dimension
    /// ldc.</summary>
    public static void Run<T>(
        int m,
        int n,
        int k,
        T* a,
        int rsA,
        int csA,
        T* b,
        int rsB,
        int csB,
        T* c,
        int ldc,
        bool accumulate
    )
        where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            Sgemm.RunSerial(m, n, k, (float*)a, rsA, csA, (float*)b, rsB, csB, (float*)c, ldc, accumulate);
        else if (typeof(T) == typeof(double))
            Dgemm.RunSerial(m, n, k, (double*)a, rsA, csA, (double*)b, rsB, csB, (double*)c, ldc, accumulate);
        else
            throw new NotSupportedException($"GEMM of {typeof(T).Name}");
    }
}
