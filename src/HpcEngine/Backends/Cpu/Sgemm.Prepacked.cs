using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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

    /// <summary>True (with C cleared where an empty sum overwrites it) when the product has nothing to multiply.</summary>
    private static bool IsEmpty(int m, int n, int k, float* c, int ldc, bool accumulate)
    {
        if (m != 0 && n != 0 && k != 0)
            return false;
        if (k == 0 && !accumulate)
            for (int i = 0; i < m; i++)
                new Span<float>(c + (long)i * ldc, n).Clear();
        return true;
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
        if (IsEmpty(m, n, k, c, ldc, accumulate))
            return;
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

    [ThreadStatic]
    private static float* _rowB;

    /// <summary>Rows of B packed per panel (the k-block).</summary>
    public const int DepthBlock = KC;

    /// <summary>Widest B <see cref="RunSerialPackedRows"/> takes.</summary>
    public const int MaxRowsWidth = NC;

    /// <summary>C (+)= A · B on the calling thread, A packed by <see cref="PackAll"/>, B (n ≤ <see
    /// cref="MaxRowsWidth"/> columns) produced row by row by <paramref name="rows"/> into a buffer that stays in L1
    /// and is scattered straight into the micro-kernel's slivers: a convolution's unfolded image never exists as a
    /// matrix (writing it and packing it again were a fifth of the forward's time).</summary>
    public static void RunSerialPackedRows<TRows>(
        int m,
        int n,
        int k,
        float* packedA,
        TRows rows,
        float* c,
        int ldc,
        bool accumulate
    )
        where TRows : IRowSource
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(n, MaxRowsWidth);
        if (IsEmpty(m, n, k, c, ldc, accumulate))
            return;
        float* pb = Buffer(ref _packB, KC * NC);
        float* row = Buffer(ref _rowB, NC + NR);
        int slivers = (n + NR - 1) / NR;
        new Span<float>(row + n, slivers * NR - n).Clear(); // the last sliver's padding columns
        for (int pc = 0; pc < k; pc += KC)
        {
            int kc = Math.Min(KC, k - pc);
            for (int kk = 0; kk < kc; kk++)
            {
                rows.Row(pc + kk, row);
                float* d = pb + kk * NR;
                for (int sl = 0; sl < slivers; sl++, d += NR * kc)
                for (int j = 0; j < NR; j += 8)
                    Vector256.Store(Vector256.Load(row + sl * NR + j), d + j);
            }
            MultiplyPacked(m, n, 0, kc, packedA + (long)PackedRows(m) * pc, pb, c, ldc, pc == 0 && !accumulate);
        }
    }
}

/// <summary>Produces B one row at a time for <see cref="Sgemm.RunSerialPackedRows"/>.</summary>
internal unsafe interface IRowSource
{
    /// <summary>Writes row <paramref name="k"/> of B (all n values) into <paramref name="dst"/>.</summary>
    void Row(int k, float* dst);
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

    /// <summary>True when <see cref="MultiplyRows"/> can take B row by row (float32 on the micro-kernel).</summary>
    public bool TakesRows => _packed != null;

    /// <summary>C [m, n] (+)= A · B with B produced row by row (<see cref="TakesRows"/> only).</summary>
    public void MultiplyRows<TRows>(int n, TRows rows, float* c, int ldc, bool accumulate)
        where TRows : IRowSource
    {
        if (_packed == null)
            throw new InvalidOperationException(
                "row-sourced products need float32 weights packed for the micro-kernel"
            );
        Sgemm.RunSerialPackedRows(_m, n, _k, _packed, rows, c, ldc, accumulate);
    }

    public void Dispose()
    {
        if (_packed != null)
            NativeMemory.AlignedFree(_packed);
        _packed = null;
    }
}
