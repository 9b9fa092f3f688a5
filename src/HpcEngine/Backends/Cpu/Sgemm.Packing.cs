using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpcEngine.Backends.Cpu;

/// <summary>Packing of the GEMM's operands into the panels the micro-kernel streams through.</summary>
internal static unsafe partial class Sgemm
{
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
                float* r0 = a + (long)s * rsA,
                    r1 = r0 + rsA,
                    r2 = r1 + rsA,
                    r3 = r2 + rsA,
                    r4 = r3 + rsA,
                    r5 = r4 + rsA;
                for (int kk = 0; kk < kc; kk++, d += MR)
                {
                    d[0] = r0[kk];
                    d[1] = r1[kk];
                    d[2] = r2[kk];
                    d[3] = r3[kk];
                    d[4] = r4[kk];
                    d[5] = r5[kk];
                }
                continue;
            }
            if (rows == MR && rsA == 1)
            {
                // Column-major A (a transposed operand): the sliver's six values for each k are adjacent.
                for (int kk = 0; kk < kc; kk++, d += MR)
                {
                    float* col = a + s + (long)kk * csA;
                    d[0] = col[0];
                    d[1] = col[1];
                    d[2] = col[2];
                    d[3] = col[3];
                    d[4] = col[4];
                    d[5] = col[5];
                }
                continue;
            }
            for (int kk = 0; kk < kc; kk++, d += MR)
            for (int r = 0; r < MR; r++)
                d[r] = r < rows ? a[(long)(s + r) * rsA + (long)kk * csA] : 0f;
        }
    }

    /// <summary>Packs a kc×nc panel of B into NR-column slivers: sliver s holds, for each k, NR consecutive
    /// values.</summary>
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
                    for (int j = 0; j < NR; j += 8)
                        Avx.Store(d + j, Avx.LoadVector256(row + j));
                }
                continue;
            }
            if (cols == NR && rsB == 1)
            {
                // Column-major source (a transposed operand such as Wᵀ): each column is a contiguous run of k.
                // Transpose 8×8 blocks in registers: 8 columns × 8 k-values in, 8 k-rows × 8 columns out.
                int kk = 0;
                for (; kk + 8 <= kc; kk += 8)
                for (int j0 = 0; j0 < NR; j0 += 8)
                    Transpose8x8(src + (long)j0 * csB + kk, csB, d + kk * NR + j0, NR);
                for (; kk < kc; kk++)
                for (int j = 0; j < NR; j++)
                    d[kk * NR + j] = src[(long)j * csB + kk];
                continue;
            }
            for (int kk = 0; kk < kc; kk++, d += NR)
            for (int j = 0; j < NR; j++)
                d[j] = j < cols ? src[(long)kk * rsB + (long)j * csB] : 0f;
        }
    }

    /// <summary>dst[r * ldd + c] = src[c * lds + r] for an 8×8 block (rows of src are the columns of dst).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Avx.LoadVector256(src);
        var r1 = Avx.LoadVector256(src + lds);
        var r2 = Avx.LoadVector256(src + 2 * lds);
        var r3 = Avx.LoadVector256(src + 3 * lds);
        var r4 = Avx.LoadVector256(src + 4 * lds);
        var r5 = Avx.LoadVector256(src + 5 * lds);
        var r6 = Avx.LoadVector256(src + 6 * lds);
        var r7 = Avx.LoadVector256(src + 7 * lds);
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(dst, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(dst + ldd, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(dst + 2 * ldd, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(dst + 3 * ldd, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(dst + 4 * ldd, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(dst + 5 * ldd, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(dst + 6 * ldd, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(dst + 7 * ldd, Avx.Permute2x128(u3, u7, 0x31));
    }
}
