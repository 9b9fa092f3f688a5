using System.Runtime.InteropServices;

namespace HpcEngine.Backends.Cpu;

/// <summary>GEMMs whose A is packed once and multiplied by many Bs: a convolution's weights, once per chunk of
/// images on every thread (packing them per product was a twentieth of the convolution's time).</summary>
internal static unsafe partial class Sgemm
{
    /// <summary>Rows of A rounded up to whole micro-kernel slivers.</summary>
    public static int PackedRows(int m) => (m + MR - 1) / MR * MR;

    /// <summary>Packs all of A (m×k, any strides) into <paramref name="dst"/> (<see cref="PackedRows"/>(m)·k floats):
    /// k-block after k-block, each as <see cref="PackA"/> lays out its rows.</summary>
    public static void PackAll(int m, int k, float* a, int rsA, int csA, float* dst)
    {
        for (int pc = 0; pc < k; pc += KC)
            PackA(m, Math.Min(KC, k - pc), a + (long)pc * csA, rsA, csA, dst + (long)PackedRows(m) * pc);
    }

    /// <summary>C (+)= A · B on the calling thread, A packed by <see cref="PackAll"/>.</summary>
    public static void RunSerialPacked(
        int m,
        int n,
        int k,
        float* packedA,
        float* b,
        int rsB,
        int csB,
        float* c,
        int ldc,
        bool accumulate
    )
    {
        if (m == 0 || n == 0 || k == 0)
        {
            if (k == 0 && !accumulate)
                for (int i = 0; i < m; i++)
                    new Span<float>(c + (long)i * ldc, n).Clear();
            return;
        }
        float* pb = Buffer(ref _packB, KC * NC);
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                PackB(kc, nc, b + (long)pc * rsB + (long)jc * csB, rsB, csB, pb);
                float* pa = packedA + (long)PackedRows(m) * pc;
                MultiplyPacked(m, nc, 0, kc, pa, pb, c + jc, ldc, pc == 0 && !accumulate);
            }
        }
    }
}

/// <summary>The A operand of many single-threaded products C (+)= A·B (a convolution's weights, or their
/// transpose): float32 is packed once into the micro-kernel's layout; float64 (gradient checks) is multiplied as
/// is.</summary>
internal sealed unsafe class GemmWeights<T> : IDisposable
    where T : unmanaged
{
    private readonly int _m,
        _k,
        _rsA,
        _csA;
    private readonly T* _a;
    private float* _packed;

    public GemmWeights(int m, int k, T* a, int rsA, int csA)
    {
        (_m, _k, _rsA, _csA) = (m, k, rsA, csA);
        _a = a;
        if (typeof(T) == typeof(float) && Sgemm.UsesMicroKernel)
        {
            _packed = (float*)NativeMemory.AlignedAlloc((nuint)((long)Sgemm.PackedRows(m) * Math.Max(k, 1) * 4), 64);
            Sgemm.PackAll(m, k, (float*)a, rsA, csA, _packed);
        }
    }

    /// <summary>C [m, n] (+)= A · B (B any strides), on the calling thread.</summary>
    public void Multiply(int n, T* b, int rsB, int csB, T* c, int ldc, bool accumulate)
    {
        if (_packed != null)
            Sgemm.RunSerialPacked(_m, n, _k, _packed, (float*)b, rsB, csB, (float*)c, ldc, accumulate);
        else
            SerialGemm.Run(_m, n, _k, _a, _rsA, _csA, b, rsB, csB, c, ldc, accumulate);
    }

    public void Dispose()
    {
        if (_packed != null)
            NativeMemory.AlignedFree(_packed);
        _packed = null;
    }
}
