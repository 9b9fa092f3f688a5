using System.Numerics;
using System.Runtime.InteropServices;

namespace HpcEngine.Backends.Cpu;

/// <summary>Convolution split by images: each thread takes a contiguous range of the batch and, a few images at a
/// time, unfolds them (into the GEMM's packed panel, or into its own column buffer, in cache), multiplies on its own
/// core and writes straight into the output — one fork-join per pass, no batch-sized column matrix, no permuted copy of the output or of its gradient
/// (the lowering above the primitives needs both). The weight gradient is summed per thread and then over threads in
/// thread order, so the result does not depend on timing. This is the partition that scales with cores: a thread's
/// work is whole images, not slivers of one GEMM.</summary>
internal static unsafe class ImageConv
{
    /// <summary>Bytes of unfolded columns per chunk: with the GEMM's packed copy of them, about what a core's L2
    /// holds.</summary>
    private const long ChunkBytes = 512 << 10;

    /// <summary>True when every thread gets enough images for the split to beat sharing each GEMM (small batches,
    /// inference at batch 1, keep the lowering whose GEMMs split over threads).</summary>
    public static bool Applies(int n) => CpuThreads.Count == 1 ? n >= 1 : n >= 4 * CpuThreads.Count;

    /// <summary>y [N, O, OH, OW] := conv(x [N, C, H, W], w [O, C/g, KH, KW]) + bias, all contiguous.</summary>
    public static void Forward<T>(T* x, T* w, T* bias, T* y, int n, int c, int o, int groups, Conv2dGeometry g)
        where T : unmanaged, INumber<T>
    {
        var s = new Sizes(c, o, groups, g);
        // Each group's weights packed once, shared read-only by every thread.
        using var weights = new WeightsOfGroups<T>(groups, gi => new(s.Og, s.Ck, w + (long)gi * s.Og * s.Ck, s.Ck, 1));
        // float32 on the micro-kernel unfolds each row of the windows straight into the GEMM's packed panel
        // (IRowSource); otherwise the chunk is unfolded into a column matrix first.
        bool byRows = typeof(T) == typeof(float) && weights[0].TakesRows && s.L <= Sgemm.MaxRowsWidth;
        int chunk = byRows ? s.ImagesPerPanel() : s.ImagesPerChunk<T>();
        EachThread(n, (b0, b1) =>
        {
            T* cols = byRows ? null : Alloc<T>((long)s.Ck * chunk * s.L);
            T* acc = Alloc<T>((long)s.Og * chunk * s.L);
            try
            {
                for (int n0 = b0; n0 < b1; n0 += chunk)
                {
                    int bc = Math.Min(chunk, b1 - n0),
                        cols_n = bc * s.L;
                    for (int gi = 0; gi < groups; gi++)
                    {
                        if (byRows)
                            weights[gi]
                                .MultiplyRows(
                                    cols_n,
                                    new ChunkRows((float*)x, s, g, n0, bc, gi),
                                    (float*)acc,
                                    cols_n,
                                    false
                                );
                        else
                        {
                            for (int j = 0; j < bc; j++)
                                ConvKernels.Im2Col(s.Image(x, n0 + j, gi), g, cols + (long)j * s.L, cols_n);
                            weights[gi].Multiply(cols_n, cols, cols_n, 1, acc, cols_n, false);
                        }
                        for (int j = 0; j < bc; j++)
                        for (int r = 0; r < s.Og; r++)
                        {
                            int oc = gi * s.Og + r;
                            var src = new ReadOnlySpan<T>(acc + (long)r * cols_n + (long)j * s.L, s.L);
                            var dst = new Span<T>(y + ((long)(n0 + j) * o + oc) * s.L, s.L);
                            if (bias == null)
                                src.CopyTo(dst);
                            else
                                AddScalar(src, bias[oc], dst);
                        }
                    }
                }
            }
            finally
            {
                if (cols != null)
                    NativeMemory.AlignedFree(cols);
                NativeMemory.AlignedFree(acc);
            }
        });
    }

    /// <summary>Rows of a chunk's unfolded windows, image after image, for the row-sourced GEMM.</summary>
    private readonly struct ChunkRows(float* x, Sizes s, Conv2dGeometry g, int n0, int bc, int gi) : IRowSource
    {
        public void Row(int k, float* dst)
        {
            for (int j = 0; j < bc; j++)
                ConvKernels.Im2ColRow(s.Image(x, n0 + j, gi), g, k, dst + (long)j * s.L);
        }
    }

    /// <summary>dx (zeroed by the caller) and/or dw of a convolution from its output gradient gy [N, O, OH, OW]; x,
    /// w, gy contiguous.</summary>
    public static void Backward<T>(T* x, T* w, T* gy, T* dx, T* dw, int n, int c, int o, int groups, Conv2dGeometry g)
        where T : unmanaged, INumber<T>
    {
        var s = new Sizes(c, o, groups, g);
        int chunk = s.ImagesPerChunk<T>();
        int threads = Math.Min(CpuThreads.Count, n);
        long wSize = (long)o * s.Ck;
        // Wᵀ of each group for the input gradient, packed once.
        using var weightsT = new WeightsOfGroups<T>(dx != null ? groups : 0, gi =>
            new(s.Ck, s.Og, w + (long)gi * s.Og * s.Ck, 1, s.Ck)
        );
        // Per thread, per group: dwᵀ [Ck, Og] — the orientation whose GEMM wastes least when Ck is small (conv1: 9
        // columns would fill 9 of the micro-kernel's 32).
        T* partial = dw != null ? Alloc<T>(threads * wSize) : null;
        if (partial != null)
            new Span<T>(partial, checked((int)(threads * wSize))).Clear();
        try
        {
            EachThread(n, (b0, b1, t) =>
            {
                T* cols = Alloc<T>((long)s.Ck * chunk * s.L);
                T* grad = Alloc<T>((long)s.Og * chunk * s.L);
                try
                {
                    for (int n0 = b0; n0 < b1; n0 += chunk)
                    {
                        int bc = Math.Min(chunk, b1 - n0),
                            cols_n = bc * s.L;
                        for (int gi = 0; gi < groups; gi++)
                        {
                            // This chunk's output gradient for the group as one [Og, bc·L] matrix.
                            for (int j = 0; j < bc; j++)
                            for (int r = 0; r < s.Og; r++)
                                new ReadOnlySpan<T>(gy + ((long)(n0 + j) * o + gi * s.Og + r) * s.L, s.L).CopyTo(
                                    new Span<T>(grad + (long)r * cols_n + (long)j * s.L, s.L)
                                );
                            if (dw != null)
                            {
                                for (int j = 0; j < bc; j++)
                                    ConvKernels.Im2Col(s.Image(x, n0 + j, gi), g, cols + (long)j * s.L, cols_n);
                                T* dwt = partial + t * wSize + (long)gi * s.Og * s.Ck;
                                SerialGemm.Run(
                                    s.Ck,
                                    s.Og,
                                    cols_n,
                                    cols,
                                    cols_n,
                                    1,
                                    grad,
                                    1,
                                    cols_n,
                                    dwt,
                                    s.Og,
                                    n0 > b0
                                );
                            }
                            if (dx != null)
                            {
                                weightsT[gi].Multiply(cols_n, grad, cols_n, 1, cols, cols_n, false);
                                for (int j = 0; j < bc; j++)
                                    ConvKernels.Col2Im(cols + (long)j * s.L, g, s.Image(dx, n0 + j, gi), cols_n);
                            }
                        }
                    }
                }
                finally
                {
                    NativeMemory.AlignedFree(cols);
                    NativeMemory.AlignedFree(grad);
                }
            });
            if (dw != null)
                SumTransposed(partial, threads, groups, s.Og, s.Ck, dw);
        }
        finally
        {
            if (partial != null)
                NativeMemory.AlignedFree(partial);
        }
    }

    /// <summary>dw[gi·Og + r, k] := Σ_t partial[t][gi][k, r], threads in order.</summary>
    private static void SumTransposed<T>(T* partial, int threads, int groups, int og, int ck, T* dw)
        where T : unmanaged, INumber<T>
    {
        long wSize = (long)groups * og * ck;
        for (int gi = 0; gi < groups; gi++)
        for (int r = 0; r < og; r++)
        for (int k = 0; k < ck; k++)
        {
            long at = (long)gi * og * ck + (long)k * og + r;
            T sum = partial[at];
            for (int t = 1; t < threads; t++)
                sum += partial[t * wSize + at];
            dw[((long)gi * og + r) * ck + k] = sum;
        }
    }

    private static void AddScalar<T>(ReadOnlySpan<T> src, T value, Span<T> dst)
        where T : unmanaged, INumber<T>
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated && src.Length >= Vector<T>.Count)
        {
            var v = new Vector<T>(value);
            for (; i + Vector<T>.Count <= src.Length; i += Vector<T>.Count)
                (new Vector<T>(src[i..]) + v).CopyTo(dst[i..]);
        }
        for (; i < src.Length; i++)
            dst[i] = src[i] + value;
    }

    /// <summary>Runs body(first, end) over contiguous image ranges, one per thread.</summary>
    private static void EachThread(int n, Action<int, int> body) => EachThread(n, (b0, b1, _) => body(b0, b1));

    private static void EachThread(int n, Action<int, int, int> body)
    {
        int threads = Math.Min(CpuThreads.Count, n);
        if (threads <= 1)
        {
            body(0, n, 0);
            return;
        }
        ForkJoinPool.Shared.Run(threads, t =>
        {
            int b0 = (int)((long)n * t / threads),
                b1 = (int)((long)n * (t + 1) / threads);
            if (b1 > b0)
                body(b0, b1, t);
        });
    }

    /// <summary>One <see cref="GemmWeights{T}"/> per group, disposed together.</summary>
    private sealed class WeightsOfGroups<T>(int groups, Func<int, GemmWeights<T>> make) : IDisposable
        where T : unmanaged
    {
        private readonly GemmWeights<T>[] _groups = [.. Enumerable.Range(0, groups).Select(make)];

        public GemmWeights<T> this[int gi] => _groups[gi];

        public void Dispose()
        {
            foreach (var g in _groups)
                g.Dispose();
        }
    }

    private static T* Alloc<T>(long count)
        where T : unmanaged => (T*)NativeMemory.AlignedAlloc((nuint)(Math.Max(count, 1) * sizeof(T)), 64);

    /// <summary>The per-group sizes every pass uses.</summary>
    private readonly struct Sizes(int c, int o, int groups, Conv2dGeometry g)
    {
        public readonly int Cg = c / groups;
        public readonly int Og = o / groups;
        public readonly int Ck = c / groups * g.KH * g.KW;
        public readonly int L = g.OH * g.OW;
        private readonly int _c = c;
        private readonly long _plane = (long)g.H * g.W;

        /// <summary>Channel block of group <paramref name="gi"/> of image <paramref name="b"/>.</summary>
        public T* Image<T>(T* img, int b, int gi)
            where T : unmanaged => img + ((long)b * _c + (long)gi * Cg) * _plane;

        /// <summary>Images per row-sourced product: as many as keep its packed panel (up to one k-block of rows)
        /// within <see cref="ChunkBytes"/>, and its width within the row buffer.</summary>
        public int ImagesPerPanel()
        {
            long columns = Math.Min(Sgemm.MaxRowsWidth, ChunkBytes / sizeof(float) / Math.Min(Ck, Sgemm.DepthBlock));
            return (int)Math.Clamp(columns / Math.Max(L, 1), 1, 64);
        }

        public int ImagesPerChunk<T>()
            where T : unmanaged => (int)Math.Clamp(ChunkBytes / Math.Max((long)Ck * L * sizeof(T), 1), 1, 64);
    }
}
