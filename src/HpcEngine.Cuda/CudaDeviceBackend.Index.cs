using System.Runtime.InteropServices;
using HpcEngine.Backends;

namespace HpcEngine.Cuda;

/// <summary>Indexing, scans and sorts: gather, scatter, scatter-add (index.cu), cumsum and its kin (scan.cu), row sorts
/// (sort.cu).</summary>
internal sealed unsafe partial class CudaDeviceBackend
{
    /// <summary>native/kernels/index.cu's struct IndexShape.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct IndexShape
    {
        public int Ndim,
            Dim;
        public fixed long Shape[8];
        public fixed long XStride[8];
        public fixed long IStride[8];
        public fixed long OStride[8];
    }

    /// <summary>The gather/scatter layout: <paramref name="index"/>'s shape, the strided tensor's, the index's and the
    /// other operand's strides.</summary>
    private static IndexShape IndexLayout(string op, int dim, Tensor strided, Tensor index, Tensor other)
    {
        if (index.Rank > 8)
            throw new ShapeMismatchException($"{op} on cuda: at most 8 dimensions (got {index.Rank})");
        if (index.DType != DType.Int64)
            throw new DTypeMismatchException($"{op} on cuda: the index must be int64");
        var s = new IndexShape { Ndim = Math.Max(index.Rank, 1), Dim = dim };
        s.Shape[0] = 1;
        for (int d = 0; d < index.Rank; d++)
        {
            s.Shape[d] = index.Shape[d];
            s.XStride[d] = strided.Strides[d];
            s.IStride[d] = index.Strides[d];
            s.OStride[d] = other.Strides[d];
        }
        return s;
    }

    private static string CopyBits(string op, DType dtype) =>
        dtype.SizeOf() switch
        {
            4 => "32",
            8 => "64",
            _ => throw new DTypeMismatchException(
                $"{op} on cuda: 4- or 8-byte dtypes (got {dtype.TorchName()}); convert with .To(DType.Float32)"
            ),
        };

    public void Gather(Tensor x, int dim, Tensor index, Tensor r) =>
        LaunchIndexed("gather_" + CopyBits("gather", x.DType), "gather", dim, x, index, r);

    public void Scatter(Tensor r, int dim, Tensor index, Tensor src) =>
        LaunchIndexed("scatter_" + CopyBits("scatter", r.DType), "scatter", dim, r, index, src);

    public void ScatterAdd(Tensor r, int dim, Tensor index, Tensor src)
    {
        Float32("scatter_add", r, src);
        LaunchIndexed("scatter_add_f32", "scatter_add", dim, r, index, src);
    }

    /// <summary>One index.cu kernel over every position of the index: (strided, index, other, n, layout), the
    /// parameter order all of them share.</summary>
    private void LaunchIndexed(string kernel, string op, int dim, Tensor strided, Tensor index, Tensor other)
    {
        if (index.NumEl == 0)
            return;
        context.Launch(
            Kernel("index.cu", kernel),
            Grid(index.NumEl),
            Block,
            0,
            Ptr(strided),
            Ptr(index),
            Ptr(other),
            (long)index.NumEl,
            IndexLayout(op, dim, strided, index, other)
        );
    }

    public void Scan(ScanOp op, Tensor x, int outer, int n, int inner, Tensor values, Tensor? indices)
    {
        Float32("cum" + op.ToString().ToLowerInvariant(), x, values);
        long lines = (long)outer * inner;
        if (lines == 0 || n == 0)
            return;
        if (inner == 1)
            context.Launch(
                Kernel("scan.cu", "scan_rows_f32"),
                Rows(outer),
                Block,
                0,
                Ptr(x),
                Ptr(values),
                indices != null ? Ptr(indices) : 0UL,
                (long)outer,
                (long)n,
                (int)op
            );
        else
            context.Launch(
                Kernel("scan.cu", "scan_lines_f32"),
                Grid(lines),
                Block,
                0,
                Ptr(x),
                Ptr(values),
                indices != null ? Ptr(indices) : 0UL,
                (long)outer,
                (long)n,
                (long)inner,
                (int)op
            );
    }

    public void Sort(Tensor x, int rows, int n, Tensor values, Tensor indices, bool descending)
    {
        Float32("sort", x, values);
        if (rows == 0 || n == 0)
            return;
        long p = 1;
        while (p < n)
            p *= 2;
        using var keys = BackendTensors.Empty([rows, (int)p], DType.Float32, x.Device);
        using var idx = BackendTensors.Empty([rows, (int)p], DType.Int64, x.Device);
        long total = rows * p;
        context.Launch(
            Kernel("sort.cu", "sort_load_f32"),
            Grid(total),
            Block,
            0,
            Ptr(x),
            Ptr(keys),
            Ptr(idx),
            (long)rows,
            (long)n,
            p
        );
        for (long k = 2; k <= p; k *= 2)
        for (long j = k / 2; j > 0; j /= 2)
            context.Launch(
                Kernel("sort.cu", "bitonic_step_f32"),
                Grid(total),
                Block,
                0,
                Ptr(keys),
                Ptr(idx),
                (long)rows,
                (long)n,
                p,
                j,
                k,
                descending ? 1 : 0
            );
        context.Launch(
            Kernel("sort.cu", "sort_store_f32"),
            Grid((long)rows * n),
            Block,
            0,
            Ptr(keys),
            Ptr(idx),
            Ptr(values),
            Ptr(indices),
            (long)rows,
            (long)n,
            p
        );
    }
}
