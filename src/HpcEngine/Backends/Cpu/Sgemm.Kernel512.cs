using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace HpcEngine.Backends.Cpu;

/// <summary>The AVX-512 micro-kernel: a 6×32 tile of C in 12 512-bit registers; per k two 16-float loads of B, six
/// broadcasts of A and 12 FMAs — twice the flops per instruction of the 6×16 AVX2 kernel, which matters where the
/// FMA units are 512 bits wide (Zen 5, Intel server cores). Written with the portable <see cref="Vector512"/> API, so
/// on a machine without AVX-512 it still runs (in software, slowly) and its tests check it there too.</summary>
internal static unsafe partial class Sgemm
{
    /// <summary>C tile (=|+=) packed A sliver (6 values per k) × packed B sliver (32 values per k) over kc; C's rows
    /// <paramref name="ldc"/> floats apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    internal static void Kernel512(int kc, float* a, float* b, float* c, int ldc, bool overwrite)
    {
        Vector512<float> c00 = default,
            c01 = default,
            c10 = default,
            c11 = default,
            c20 = default,
            c21 = default;
        Vector512<float> c30 = default,
            c31 = default,
            c40 = default,
            c41 = default,
            c50 = default,
            c51 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var a0 = Vector512.Create(a[0]);
            c00 = Vector512.FusedMultiplyAdd(a0, b0, c00);
            c01 = Vector512.FusedMultiplyAdd(a0, b1, c01);
            var a1 = Vector512.Create(a[1]);
            c10 = Vector512.FusedMultiplyAdd(a1, b0, c10);
            c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
            var a2 = Vector512.Create(a[2]);
            c20 = Vector512.FusedMultiplyAdd(a2, b0, c20);
            c21 = Vector512.FusedMultiplyAdd(a2, b1, c21);
            var a3 = Vector512.Create(a[3]);
            c30 = Vector512.FusedMultiplyAdd(a3, b0, c30);
            c31 = Vector512.FusedMultiplyAdd(a3, b1, c31);
            var a4 = Vector512.Create(a[4]);
            c40 = Vector512.FusedMultiplyAdd(a4, b0, c40);
            c41 = Vector512.FusedMultiplyAdd(a4, b1, c41);
            var a5 = Vector512.Create(a[5]);
            c50 = Vector512.FusedMultiplyAdd(a5, b0, c50);
            c51 = Vector512.FusedMultiplyAdd(a5, b1, c51);
            a += 6;
            b += 32;
        }
        Store512(c, c00, c01, overwrite);
        Store512(c + ldc, c10, c11, overwrite);
        Store512(c + 2 * ldc, c20, c21, overwrite);
        Store512(c + 3 * ldc, c30, c31, overwrite);
        Store512(c + 4 * ldc, c40, c41, overwrite);
        Store512(c + 5 * ldc, c50, c51, overwrite);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512(float* c, Vector512<float> v0, Vector512<float> v1, bool overwrite)
    {
        if (!overwrite)
        {
            v0 += Vector512.Load(c);
            v1 += Vector512.Load(c + 16);
        }
        v0.Store(c);
        v1.Store(c + 16);
    }
}
