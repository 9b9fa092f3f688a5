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
/// transposed operands (x·Wᵀ, Aᵀ·g) need no copy. Threads pack each B panel together, then split the rows of C
/// (each packing its own A blocks) or, when there are few rows, the panel's column slivers; nothing is packed twice.</summary>
internal static unsafe partial class Sgemm
{
    private const long SmallGemmFlops = 400_000_000;
    private const int MR = 6,
        KC = 256,
        MC = 120,
        NC = 4096;

    // The micro-kernel's width: 32 columns (two 512-bit registers per row) where AVX-512 runs natively, 16 (two AVX
    // registers) otherwise. Static readonly: the JIT folds it into a constant, so the loops are as if it were one.
    private static readonly int NR = Avx512F.IsSupported ? 32 : 16;

    /// <summary>The micro-kernel this machine runs (what `hpcengine info` names).</summary>
    public static string KernelName =>
        !Fma.IsSupported || !Avx.IsSupported ? "portable fallback (no FMA)"
        : NR == 32 ? "AVX-512 6x32"
        : "AVX2/FMA 6x16";

    [ThreadStatic]
    private static float* _packA;

    [ThreadStatic]
    private static float* _packB;

    /// <summary>C[i, j] (+)= sum_k A[i*rsA + k*csA] * B[k*rsB + j*csB]; C row-major with leading dimension
    /// ldc.</summary>
    public static void Run(
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
        if (m == 0 || n == 0)
            return;
        if (k == 0)
        {
            if (!accumulate)
                for (int i = 0; i < m; i++)
                    new Span<float>(c + (long)i * ldc, n).Clear();
            return;
        }
        if (!Fma.IsSupported || !Avx.IsSupported)
        {
            Naive(m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
            return;
        }
        long flops = 2L * m * n * k;
        int threads = flops < 1_000_000 ? 1 : CpuThreads.Count;
        if (threads > 1 && (long)m * n <= SplitKMaxOutput && k >= threads * 4 * KC)
        {
            SplitK(threads, m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
            return;
        }
        if (threads > 1 && flops < SmallGemmFlops && n >= threads * NR)
        {
            // Small product: one fork-join region; each thread takes a range of column slivers and packs its own
            // panels (re-packing A costs less here than two synchronisations per k-block).
            int units = (n + NR - 1) / NR;
            ForkJoinPool.Shared.Run(threads, t =>
            {
                int j0 = units * t / threads * NR,
                    j1 = Math.Min(n, units * (t + 1) / threads * NR);
                if (j1 > j0)
                    Serial(m, j1 - j0, k, a, rsA, csA, b + (long)j0 * csB, rsB, csB, c + j0, ldc, accumulate);
            });
            return;
        }
        if (threads <= 1)
        {
            Serial(m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
            return;
        }
        // Rows when there are enough row slivers to share; otherwise split the column slivers of each panel.
        bool splitRows = m >= threads * MR * 4;
        float* pb = Buffer(ref _packB, KC * NC);
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            int slivers = (nc + NR - 1) / NR;
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                bool first = pc == 0 && !accumulate;
                float* bPanel = b + (long)pc * rsB + (long)jc * csB;
                float* aPanel = a + (long)pc * csA;
                float* cPanel = c + jc;
                // The B panel is packed once, cooperatively, then shared by every thread.
                Parallel(threads, (t, parts) =>
                {
                    int s0 = slivers * t / parts * NR,
                        s1 = Math.Min(nc, slivers * (t + 1) / parts * NR);
                    if (s1 > s0)
                        PackB(kc, s1 - s0, bPanel + (long)s0 * csB, rsB, csB, pb + (long)s0 * kc);
                });
                Parallel(threads, (t, parts) =>
                {
                    if (splitRows)
                    {
                        int units = (m + MR - 1) / MR;
                        int r0 = units * t / parts * MR,
                            r1 = Math.Min(m, units * (t + 1) / parts * MR);
                        if (r1 > r0)
                            Compute(
                                r1 - r0,
                                nc,
                                0,
                                kc,
                                aPanel + (long)r0 * rsA,
                                rsA,
                                csA,
                                pb,
                                cPanel + (long)r0 * ldc,
                                ldc,
                                first
                            );
                    }
                    else
                    {
                        int j0 = slivers * t / parts * NR,
                            j1 = Math.Min(nc, slivers * (t + 1) / parts * NR);
                        if (j1 > j0)
                            Compute(m, j1 - j0, j0, kc, aPanel, rsA, csA, pb, cPanel + j0, ldc, first);
                    }
                });
            }
        }
    }

    /// <summary>True when products run on the micro-kernel (AVX2/FMA or AVX-512); false on the portable fallback.</summary>
    public static bool UsesMicroKernel => Fma.IsSupported && Avx.IsSupported;

    /// <summary><see cref="Run"/> on the calling thread only (no fork-join): for callers that split work over threads
    /// themselves.</summary>
    public static void RunSerial(
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
        if (m == 0 || n == 0)
            return;
        if (k == 0 || !Fma.IsSupported || !Avx.IsSupported)
            Naive(m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
        else
            Serial(m, n, k, a, rsA, csA, b, rsB, csB, c, ldc, accumulate);
    }

    /// <summary>On the calling thread alone: pack and compute panel by panel with this thread's buffers.</summary>
    private static void Serial(
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
        float* pb = Buffer(ref _packB, KC * NC);
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                PackB(kc, nc, b + (long)pc * rsB + (long)jc * csB, rsB, csB, pb);
                Compute(m, nc, 0, kc, a + (long)pc * csA, rsA, csA, pb, c + jc, ldc, pc == 0 && !accumulate);
            }
        }
    }

    private static void Parallel(int threads, Action<int, int> body)
    {
        if (threads <= 1)
            body(0, 1);
        else
            ForkJoinPool.Shared.Run(threads, t => body(t, threads));
    }

    private static float* Buffer(ref float* slot, int floats)
    {
        if (slot == null)
            slot = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
        return slot;
    }

    /// <summary>C[0..m, 0..n) (+)= A[0..m, 0..kc) · packed B slivers starting at column <paramref name="j0"/> of the
    /// panel. A is packed here, MC rows at a time, into this thread's buffer.</summary>
    private static void Compute(
        int m,
        int n,
        int j0,
        int kc,
        float* a,
        int rsA,
        int csA,
        float* pb,
        float* c,
        int ldc,
        bool first
    )
    {
        float* pa = Buffer(ref _packA, MC * KC);
        for (int ic = 0; ic < m; ic += MC)
        {
            int mc = Math.Min(MC, m - ic);
            PackA(mc, kc, a + (long)ic * rsA, rsA, csA, pa);
            MultiplyPacked(mc, n, j0, kc, pa, pb, c + (long)ic * ldc, ldc, first);
        }
    }

    /// <summary>C[0..m, 0..n) (+)= packed A (m rows in MR slivers over kc) · packed B slivers from column
    /// <paramref name="j0"/> of the panel.</summary>
    private static void MultiplyPacked(
        int m,
        int n,
        int j0,
        int kc,
        float* pa,
        float* pb,
        float* c,
        int ldc,
        bool first
    )
    {
        float* tile = stackalloc float[MR * NR];
        for (int jr = 0; jr < n; jr += NR)
        {
            int nr = Math.Min(NR, n - jr);
            float* bs = pb + (long)(j0 + jr) * kc;
            for (int ir = 0; ir < m; ir += MR)
            {
                int mr = Math.Min(MR, m - ir);
                float* cij = c + (long)ir * ldc + jr;
                if (mr == MR && nr == NR)
                    Tile(kc, pa + ir * kc, bs, cij, ldc, first);
                else
                {
                    // Edge tile: compute the full padded tile into scratch, copy out the valid part.
                    Tile(kc, pa + ir * kc, bs, tile, NR, true);
                    for (int i = 0; i < mr; i++)
                    for (int j = 0; j < nr; j++)
                        cij[(long)i * ldc + j] = first ? tile[i * NR + j] : cij[(long)i * ldc + j] + tile[i * NR + j];
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        if (NR == 32)
            Kernel512(kc, a, b, c, ldc, overwrite);
        else
            Kernel(kc, a, b, c, ldc, overwrite);
    }

    /// <summary>The 6×16 micro-kernel: C tile (=|+=) packed A sliver × packed B sliver over kc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Kernel(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        // Fetch the C tile now so its cache misses overlap the k-loop instead of stalling the store at the end.
        Sse.Prefetch0(c);
        Sse.Prefetch0(c + ldc);
        Sse.Prefetch0(c + 2 * ldc);
        Sse.Prefetch0(c + 3 * ldc);
        Sse.Prefetch0(c + 4 * ldc);
        Sse.Prefetch0(c + 5 * ldc);
        Vector256<float> c00 = default,
            c01 = default,
            c10 = default,
            c11 = default,
            c20 = default,
            c21 = default;
        Vector256<float> c30 = default,
            c31 = default,
            c40 = default,
            c41 = default,
            c50 = default,
            c51 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Avx.LoadAlignedVector256(b);
            var b1 = Avx.LoadAlignedVector256(b + 8);
            var a0 = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(a0, b0, c00);
            c01 = Fma.MultiplyAdd(a0, b1, c01);
            var a1 = Vector256.Create(a[1]);
            c10 = Fma.MultiplyAdd(a1, b0, c10);
            c11 = Fma.MultiplyAdd(a1, b1, c11);
            var a2 = Vector256.Create(a[2]);
            c20 = Fma.MultiplyAdd(a2, b0, c20);
            c21 = Fma.MultiplyAdd(a2, b1, c21);
            var a3 = Vector256.Create(a[3]);
            c30 = Fma.MultiplyAdd(a3, b0, c30);
            c31 = Fma.MultiplyAdd(a3, b1, c31);
            var a4 = Vector256.Create(a[4]);
            c40 = Fma.MultiplyAdd(a4, b0, c40);
            c41 = Fma.MultiplyAdd(a4, b1, c41);
            var a5 = Vector256.Create(a[5]);
            c50 = Fma.MultiplyAdd(a5, b0, c50);
            c51 = Fma.MultiplyAdd(a5, b1, c51);
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
    private static void Naive(
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
        for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
        {
            float acc = accumulate ? c[(long)i * ldc + j] : 0f;
            for (int p = 0; p < k; p++)
                acc += a[(long)i * rsA + (long)p * csA] * b[(long)p * rsB + (long)j * csB];
            c[(long)i * ldc + j] = acc;
        }
    }
}
