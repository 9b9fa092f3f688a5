using System.Numerics;
using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

/// <summary>Row sums and row extremes of a contiguous [rows, n] matrix (SIMD per row, rows across threads), and column
/// sums of a [rows, n] matrix (the bias-gradient shape) without a transpose.</summary>
internal static unsafe class ReduceKernels
{
    /// <summary>dst[r] = Σ src[r, 0..n).</summary>
    public static void SumRows<T>(T* src, int rows, int n, T* dst)
        where T : unmanaged, INumber<T>
    {
        CpuThreads.For(rows, (long)rows * n, (s, e) =>
        {
            for (int r = s; r < e; r++)
                dst[r] = TensorPrimitives.Sum(new ReadOnlySpan<T>(src + (long)r * n, n));
        });
    }

    /// <summary>dst[r] and indices[r] := the max (or min) of row r and the index of its first occurrence (a NaN
    /// wins).</summary>
    public static void ExtremeRows<T>(T* src, int rows, int n, T* dst, long* indices, bool max)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CpuThreads.For(rows, (long)rows * n, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var x = new ReadOnlySpan<T>(src + (long)r * n, n);
                long i =
                    n == 0 ? 0
                    : max ? TensorPrimitives.IndexOfMax(x)
                    : TensorPrimitives.IndexOfMin(x);
                if (dst != null)
                    dst[r] = n == 0 ? T.NaN : x[(int)i];
                if (indices != null)
                    indices[r] = i;
            }
        });
    }

    /// <summary>dst[j] = sum_r src[r, j]: adds whole rows with SIMD; columns are split across threads.</summary>
    public static void SumColumns<T>(T* src, int rows, int n, T* dst)
        where T : unmanaged, INumber<T>
    {
        CpuThreads.For(n, (long)rows * n, (s, e) =>
        {
            var d = new Span<T>(dst + s, e - s);
            d.Clear();
            for (int r = 0; r < rows; r++)
                TensorPrimitives.Add(d, new ReadOnlySpan<T>(src + (long)r * n + s, e - s), d);
        });
    }
}
