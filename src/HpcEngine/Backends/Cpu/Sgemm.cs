using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpcEngine.Backends.Cpu;

/// <summary>Single-precision GEMM, C (+)= A·B, in the BLIS/GotoBLAS structure:
/// <code>
///   for jc in N step NC:            B panel KC×NC packed into NR-wide slivers   (lives in L3)
///     for pc in K step KC:
///       pack B[pc.., jc..]
///       for ic in M step MC:        A block MC×KC packed into MR-tall slivers  (lives in L2)
///         pack A[ic.., pc..]
///         for jr, ir: micro-kernel MR×NR over KC                               (B sliver in L1)
/// </code>
/// The micro-kernel keeps a 6×16 tile of C in 12 AVX registers: per k it loads two 8-float vectors of B,
/// broadcasts six values of A and issues 12 FMAs (napkin math: 2 FMA ports × 8 lanes × 2 flops = 32 flop/cycle per
/// core, so ~190 GFLOP/s on two 3 GHz cores at peak). Packing reads A and B through arbitrary row/column strides, so
/// transposed operands (x·Wᵀ, Aᵀ·g) need no copy. Work is split across threads by columns (or by rows when N is
/// small), each thread packing its own buffers.</summary>
internal static unsafe class Sgemm
{
    private const int MR = 6, NR = 16, KC = 256, MC = 120, NC = 3072;

    [ThreadStatic] private static float* _packA;
    [ThreadStatic] private static float* _packB;

    /// <summary>C[i, j] (+)= sum_k A[i*rsA + k*csA] * B[k*rsB + j*csB]; C row-major with leading dimension ldc.</summary>
    public static void Run(int m, int n, int k, float* a, int rsA, int csA, float* b, int rsB, int csB, float* c, int ldc, bool accumulate)
    {
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate) for (int i = 0; i < m; i++) new Span<float>(c + (long)i * ldc, n).Clear();
            return;
        }
        if (!Fma.IsSupported || !Avx.IsSupported)
        {
            Naive(m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
            return;
        }
        long flops = 2L * m * n * k;
        int threads = flops < 2_000_000 ? 1 : CpuThreads.Count;
        bool splitN = n >= m || n >= NR * threads * 4;
        int units = splitN ? (n + NR - 1) / NR : (m + MR - 1) / MR;
        threads = Math.Min(threads, units);
        if (threads <= 1)
        {
            Block(m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
            return;
        }
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
        {
            int u0 = (int)((long)units * t / threads), u1 = (int)((long)units * (t + 1) / threads);
            if (splitN)
            {
                int j0 = u0 * NR, j1 = Math.Min(n, u1 * NR);
                if (j1 > j0) Block(m, j1 - j0, k, a, rsA, csA, b + (long)j0 * csB, rsB, csB, c + j0, ldc, accumulate);
            }
            else
            {
                int i0 = u0 * MR, i1 = Math.Min(m, u1 * MR);
                if (i1 > i0) Block(i1 - i0, n, k, a + (long)i0 * rsA, rsA, csA, b, rsB, csB, c + (long)i0 * ldc, ldc, accumulate);
            }
        });
    }

    private static void Block(int m, int n, int k, float* a, int rsA, int csA, float* b, int rsB, int csB, float* c, int ldc, bool accumulate)
    {
        if (_packA == null)
        {
            _packA = (float*)NativeMemory.AlignedAlloc((nuint)(MC * KC * sizeof(float)), 64);
            _packB = (float*)NativeMemory.AlignedAlloc((nuint)(KC * NC * sizeof(float)), 64);
        }
        float* pa = _packA, pb = _packB;
        float* tile = stackalloc float[MR * NR];
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                bool first = pc == 0 && !accumulate;
                PackB(kc, nc, b + (long)pc * rsB + (long)jc * csB, rsB, csB, pb);
                for (int ic = 0; ic < m; ic += MC)
                {
                    int mc = Math.Min(MC, m - ic);
                    PackA(mc, kc, a + (long)ic * rsA + (long)pc * csA, rsA, csA, pa);
                    for (int jr = 0; jr < nc; jr += NR)
                    {
                        int nr = Math.Min(NR, nc - jr);
                        for (int ir = 0; ir < mc; ir += MR)
                        {
                            int mr = Math.Min(MR, mc - ir);
                            float* cij = c + (long)(ic + ir) * ldc + jc + jr;
                            if (mr == MR && nr == NR)
                                Kernel(kc, pa + ir * kc, pb + jr * kc, cij, ldc, first);
                            else
                            {
                                // Edge tile: compute the full padded tile into scratch, copy out the valid part.
                                Kernel(kc, pa + ir * kc, pb + jr * kc, tile, NR, true);
                                for (int i = 0; i < mr; i++)
                                    for (int j = 0; j < nr; j++)
                                        cij[(long)i * ldc + j] = first ? tile[i * NR + j] : cij[(long)i * ldc + j] + tile[i * NR + j];
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Packs an mc×kc block of A into MR-row slivers: sliver s holds, for each k, MR consecutive values.
    /// Rows past mc are zero so the kernel never branches.</summary>
    private static void PackA(int mc, int kc, float* a, int rsA, int csA, float* dst)
    {
        for (int s = 0; s < mc; s += MR)
        {
            int rows = Math.Min(MR, mc - s);
            float* d = dst + s * kc;
            if (rows == MR && csA == 1)
            {
                float* r0 = a + (long)s * rsA, r1 = r0 + rsA, r2 = r1 + rsA, r3 = r2 + rsA, r4 = r3 + rsA, r5 = r4 + rsA;
                for (int kk = 0; kk < kc; kk++, d += MR)
                {
                    d[0] = r0[kk]; d[1] = r1[kk]; d[2] = r2[kk]; d[3] = r3[kk]; d[4] = r4[kk]; d[5] = r5[kk];
                }
                continue;
            }
            for (int kk = 0; kk < kc; kk++, d += MR)
                for (int r = 0; r < MR; r++)
                    d[r] = r < rows ? a[(long)(s + r) * rsA + (long)kk * csA] : 0f;
        }
    }

    /// <summary>Packs a kc×nc panel of B into NR-column slivers: sliver s holds, for each k, NR consecutive values.</summary>
    private static void PackB(int kc, int nc, float* b, int rsB, int csB, float* dst)
    {
        for (int s = 0; s < nc; s += NR)
        {
            int cols = Math.Min(NR, nc - s);
            float* d = dst + s * kc;
            float* src = b + (long)s * csB;
            if (cols == NR && csB == 1)
            {
                for (int kk = 0; kk < kc; kk++, d += NR)
                {
                    float* row = src + (long)kk * rsB;
                    Avx.Store(d, Avx.LoadVector256(row));
                    Avx.Store(d + 8, Avx.LoadVector256(row + 8));
                }
                continue;
            }
            if (cols == NR && rsB == 1)
            {
                // Column-major source (a transposed operand): walk each column contiguously.
                for (int j = 0; j < NR; j++)
                {
                    float* col = src + (long)j * csB;
                    for (int kk = 0; kk < kc; kk++) d[kk * NR + j] = col[kk];
                }
                continue;
            }
            for (int kk = 0; kk < kc; kk++, d += NR)
                for (int j = 0; j < NR; j++)
                    d[j] = j < cols ? src[(long)kk * rsB + (long)j * csB] : 0f;
        }
    }

    /// <summary>The 6×16 micro-kernel: C tile (=|+=) packed A sliver × packed B sliver over kc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Kernel(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Avx.LoadAlignedVector256(b);
            var b1 = Avx.LoadAlignedVector256(b + 8);
            var a0 = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(a0, b0, c00); c01 = Fma.MultiplyAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(a1, b0, c10); c11 = Fma.MultiplyAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(a2, b0, c20); c21 = Fma.MultiplyAdd(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(a3, b0, c30); c31 = Fma.MultiplyAdd(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Fma.MultiplyAdd(a4, b0, c40); c41 = Fma.MultiplyAdd(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Fma.MultiplyAdd(a5, b0, c50); c51 = Fma.MultiplyAdd(a5, b1, c51);
            a += MR;
            b += NR;
        }
        StoreRow(c, c00, c01, overwrite);
        StoreRow(c + ldc, c10, c11, overwrite);
        StoreRow(c + 2 * ldc, c20, c21, overwrite);
        StoreRow(c + 3 * ldc, c30, c31, overwrite);
        StoreRow(c + 4 * ldc, c40, c41, overwrite);
        StoreRow(c + 5 * ldc, c50, c51, overwrite);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* c, Vector256<float> v0, Vector256<float> v1, bool overwrite)
    {
        if (!overwrite)
        {
            v0 = Avx.Add(v0, Avx.LoadVector256(c));
            v1 = Avx.Add(v1, Avx.LoadVector256(c + 8));
        }
        Avx.Store(c, v0);
        Avx.Store(c + 8, v1);
    }

    /// <summary>Reference path for CPUs without AVX2/FMA.</summary>
    private static void Naive(int m, int n, int k, float* a, int rsA, int csA, float* b, int rsB, int csB, float* c, int ldc, bool accumulate)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float acc = accumulate ? c[(long)i * ldc + j] : 0f;
                for (int p = 0; p < k; p++) acc += a[(long)i * rsA + (long)p * csA] * b[(long)p * rsB + (long)j * csB];
                c[(long)i * ldc + j] = acc;
            }
    }
}
