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
        int es = x.DType.SizeOf();
        byte* px = x.BytePtr,
            pd = dst.BytePtr;
        ForEachPick("gather", x, dim, index, dst, (ox, od) => Buffer.MemoryCopy(px + ox * es, pd + od * es, es, es));
    }

    /// <summary>dst[..., index[..., j, ...], ...] += src[..., j, ...] over every position of index.</summary>
    public static void ScatterAdd<T>(Tensor dst, int dim, Tensor index, Tensor src)
        where T : unmanaged, INumber<T>
    {
        T* ps = src.Ptr<T>(),
            pd = dst.Ptr<T>();
        ForEachPick("scatter_add", dst, dim, index, src, (od, os) => pd[od] += ps[os]);
    }

    /// <summary>dst[..., index[..., j, ...], ...] := src[..., j, ...] over every position of index, in order (a
    /// later duplicate overwrites an earlier one).</summary>
    public static void Scatter(Tensor dst, int dim, Tensor index, Tensor src)
    {
        int es = dst.DType.SizeOf();
        byte* ps = src.BytePtr,
            pd = dst.BytePtr;
        ForEachPick("scatter", dst, dim, index, src, (od, os) => Buffer.MemoryCopy(ps + os * es, pd + od * es, es, es));
    }

    /// <summary>Walks every position of index in order, giving the element offset it picks in
    /// <paramref name="strided"/> (along dim at the index's value, checked in range) and its offset in
    /// <paramref name="other"/> (read through index's shape).</summary>
    private static void ForEachPick(
        string op,
        Tensor strided,
        int dim,
        Tensor index,
        Tensor other,
        Action<long, long> body
    )
    {
        int rank = index.Rank;
        var istr = index.Strides.ToArray();
        var xstr = strided.Strides.ToArray();
        var ostr = other.Strides.ToArray();
        int limit = strided.Shape[dim];
        long* pi = index.Ptr<long>();
        ForEachIndex(index.ShapeArray, (idx) =>
        {
            long oi = 0,
                ox = 0,
                oo = 0;
            for (int d = 0; d < rank; d++)
            {
                oi += (long)idx[d] * istr[d];
                oo += (long)idx[d] * ostr[d];
                if (d != dim)
                    ox += (long)idx[d] * xstr[d];
            }
            long k = pi[oi];
            if (k < 0 || k >= limit)
                throw new IndexOutOfRangeException(
                    $"{op}: index {k} at position {Shapes.Format(idx)} is out of range for dimension {dim} of size "
                        + $"{limit}"
                );
            body(ox + k * xstr[dim], oo);
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
