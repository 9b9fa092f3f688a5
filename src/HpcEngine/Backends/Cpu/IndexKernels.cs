using System.Numerics;

namespace HpcEngine.Backends.Cpu;

/// <summary>Gather, scatter and scatter-add along one dim. Index tensors are int64 (int32 accepted) and every index is
/// bounds-checked: a bad index is an error naming the op, the position and the valid range, never a wild
/// read.</summary>
internal static unsafe class IndexKernels
{
    /// <summary>out[..., j, ...] = x[..., index[..., j, ...], ...] (all positions of index; out has index's
    /// shape).</summary>
    public static void Gather(Tensor x, int dim, Tensor index, Tensor dst)
    {
        int es = x.DType.SizeOf(),
            rank = index.Rank;
        var ishape = index.ShapeArray;
        var istr = index.Strides.ToArray();
        var xstr = x.Strides.ToArray();
        var dstr = dst.Strides.ToArray();
        int limit = x.Shape[dim];
        byte* px = x.BytePtr,
            pd = dst.BytePtr;
        long* pi = index.Ptr<long>();
        ForEachIndex(ishape, (idx) =>
        {
            long oi = 0,
                ox = 0,
                od = 0;
            for (int d = 0; d < rank; d++)
            {
                oi += (long)idx[d] * istr[d];
                od += (long)idx[d] * dstr[d];
                if (d != dim)
                    ox += (long)idx[d] * xstr[d];
            }
            long k = pi[oi];
            if (k < 0 || k >= limit)
                throw new IndexOutOfRangeException(
                    $"gather: index {k} at position {Shapes.Format(idx)} is out of range for dimension {dim} of size "
                        + $"{limit}"
                );
            ox += k * xstr[dim];
            Buffer.MemoryCopy(px + ox * es, pd + od * es, es, es);
        });
    }

    /// <summary>dst[..., index[..., j, ...], ...] += src[..., j, ...] over every position of index.</summary>
    public static void ScatterAdd<T>(Tensor dst, int dim, Tensor index, Tensor src)
        where T : unmanaged, INumber<T>
    {
        int rank = index.Rank;
        var ishape = index.ShapeArray;
        var istr = index.Strides.ToArray();
        var sstr = src.Strides.ToArray();
        var dstr = dst.Strides.ToArray();
        int limit = dst.Shape[dim];
        T* ps = src.Ptr<T>(),
            pd = dst.Ptr<T>();
        long* pi = index.Ptr<long>();
        ForEachIndex(ishape, (idx) =>
        {
            long oi = 0,
                os = 0,
                od = 0;
            for (int d = 0; d < rank; d++)
            {
                oi += (long)idx[d] * istr[d];
                os += (long)idx[d] * sstr[d];
                if (d != dim)
                    od += (long)idx[d] * dstr[d];
            }
            long k = pi[oi];
            if (k < 0 || k >= limit)
                throw new IndexOutOfRangeException(
                    $"scatter_add: index {k} at position {Shapes.Format(idx)} is out of range for dimension {dim} of "
                        + $"size {limit}"
                );
            pd[od + k * dstr[dim]] += ps[os];
        });
    }

    /// <summary>dst[..., index[..., j, ...], ...] := src[..., j, ...] over every position of index, in order (a
    /// later duplicate overwrites an earlier one).</summary>
    public static void Scatter(Tensor dst, int dim, Tensor index, Tensor src)
    {
        int es = dst.DType.SizeOf(),
            rank = index.Rank;
        var ishape = index.ShapeArray;
        var istr = index.Strides.ToArray();
        var sstr = src.Strides.ToArray();
        var dstr = dst.Strides.ToArray();
        int limit = dst.Shape[dim];
        byte* ps = src.BytePtr,
            pd = dst.BytePtr;
        long* pi = index.Ptr<long>();
        ForEachIndex(ishape, (idx) =>
        {
            long oi = 0,
                os = 0,
                od = 0;
            for (int d = 0; d < rank; d++)
            {
                oi += (long)idx[d] * istr[d];
                os += (long)idx[d] * sstr[d];
                if (d != dim)
                    od += (long)idx[d] * dstr[d];
            }
            long k = pi[oi];
            if (k < 0 || k >= limit)
                throw new IndexOutOfRangeException(
                    $"scatter: index {k} at position {Shapes.Format(idx)} is out of range for dimension {dim} of size "
                        + $"{limit}"
                );
            od += k * dstr[dim];
            Buffer.MemoryCopy(ps + os * es, pd + od * es, es, es);
        });
    }

    /// <summary>Sequential walk over every multi-index of <paramref name="shape"/> (scatter must not race).</summary>
    private static void ForEachIndex(int[] shape, Action<int[]> body)
    {
        if (Shapes.NumEl(shape) == 0)
            return;
        var idx = new int[shape.Length];
        while (true)
        {
            body(idx);
            int d = shape.Length - 1;
            for (; d >= 0; d--)
            {
                if (++idx[d] < shape[d])
                    break;
                idx[d] = 0;
            }
            if (d < 0)
                return;
        }
    }
}
