using System.Numerics;
using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

internal enum ReduceOp
{
    Sum,
    Mean,
    Max,
    Min,
    ArgMax,
    ArgMin,
    Var,
    LogSumExp,
    Norm1,
    Norm2,
    NormInf,
}

/// <summary>Reductions of each row of a contiguous [rows, n] matrix to one value (SIMD per row, rows across threads),
/// and column sums of a [rows, n] matrix (the bias-gradient shape) without a transpose.</summary>
internal static unsafe class ReduceKernels
{
    /// <summary>dst[r] = op(src[r, 0..n)); for Max/Min also writes the index into <paramref name="indices"/>.</summary>
    public static void Rows<T>(ReduceOp op, T* src, int rows, int n, T* dst, long* indices, double correction)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CpuThreads.For(rows, (long)rows * n, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var x = new ReadOnlySpan<T>(src + (long)r * n, n);
                dst[r] = Row(op, x, out long idx, correction);
                if (indices != null) indices[r] = idx;
            }
        });
    }

    private static T Row<T>(ReduceOp op, ReadOnlySpan<T> x, out long index, double correction) where T : unmanaged, IFloatingPointIeee754<T>
    {
        index = 0;
        int n = x.Length;
        switch (op)
        {
            case ReduceOp.Sum: return TensorPrimitives.Sum(x);
            case ReduceOp.Mean: return n == 0 ? T.NaN : TensorPrimitives.Sum(x) / T.CreateTruncating(n);
            case ReduceOp.Max:
            case ReduceOp.ArgMax:
                if (n == 0) return T.NaN;
                index = TensorPrimitives.IndexOfMax(x);
                return x[(int)index];
            case ReduceOp.Min:
            case ReduceOp.ArgMin:
                if (n == 0) return T.NaN;
                index = TensorPrimitives.IndexOfMin(x);
                return x[(int)index];
            case ReduceOp.Var:
            {
                T mean = TensorPrimitives.Sum(x) / T.CreateTruncating(n);
                T acc = T.Zero;
                foreach (var v in x) { T d = v - mean; acc += d * d; }
                return acc / T.CreateTruncating(Math.Max(n - correction, 0));
            }
            case ReduceOp.LogSumExp:
            {
                if (n == 0) return T.NegativeInfinity;
                T m = TensorPrimitives.Max(x);
                if (T.IsInfinity(m)) return m;
                T acc = T.Zero;
                foreach (var v in x) acc += T.Exp(v - m);
                return m + T.Log(acc);
            }
            case ReduceOp.Norm1: return TensorPrimitives.SumOfMagnitudes(x);
            case ReduceOp.Norm2: return T.Sqrt(TensorPrimitives.SumOfSquares(x));
            case ReduceOp.NormInf: return n == 0 ? T.Zero : T.Abs(TensorPrimitives.MaxMagnitude(x));
            default: throw new ArgumentOutOfRangeException(nameof(op));
        }
    }

    /// <summary>Integer sums (int32/int64 input, int64 result).</summary>
    public static void SumRowsInt64(long* src, int rows, int n, long* dst)
    {
        for (int r = 0; r < rows; r++) dst[r] = TensorPrimitives.Sum(new ReadOnlySpan<long>(src + (long)r * n, n));
    }

    /// <summary>dst[j] = sum_r src[r, j]: adds whole rows with SIMD; columns are split across threads.</summary>
    public static void SumColumns<T>(T* src, int rows, int n, T* dst) where T : unmanaged, INumber<T>
    {
        CpuThreads.For(n, (long)rows * n, (s, e) =>
        {
            var d = new Span<T>(dst + s, e - s);
            d.Clear();
            for (int r = 0; r < rows; r++) TensorPrimitives.Add(d, new ReadOnlySpan<T>(src + (long)r * n + s, e - s), d);
        });
    }
}
