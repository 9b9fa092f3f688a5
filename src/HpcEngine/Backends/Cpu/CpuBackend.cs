using System.Numerics;

namespace HpcEngine.Backends.Cpu;

/// <summary>The CPU as a backend like any device: the primitives over the engine's SIMD, multi-threaded kernels. Each
/// primitive picks the kernel for the operands' dtype (float32 and float64 everywhere, the integer dtypes where the op
/// is defined for them) and decides how to spread the work over threads (<see cref="CpuThreads"/>). <para>CPU tensors
/// take their storage from the pool (<c>Storage.Allocate</c>), not from <see cref="Allocate"/>; the interface's memory
/// calls are served with pinned host blocks for code that allocates through the interface.</para></summary>
internal sealed unsafe partial class CpuBackend : IBackend
{
    public static readonly CpuBackend Instance = new();

    private CpuBackend() { }

    /// <summary>A pinned host block handed out as backend memory.</summary>
    internal sealed class HostBlock(long bytes) : IBackendMemory
    {
        public byte[] Data { get; } = GC.AllocateArray<byte>((int)Math.Max(bytes, 1), pinned: true);

        public long Bytes { get; } = bytes;

        public void Dispose() { }
    }

    public IBackendMemory Allocate(Device device, long bytes) => new HostBlock(bytes);

    public void CopyFromHost(IBackendMemory dst, long dstOffsetBytes, ReadOnlySpan<byte> src) =>
        src.CopyTo(((HostBlock)dst).Data.AsSpan(checked((int)dstOffsetBytes)));

    public void CopyToHost(Span<byte> dst, IBackendMemory src, long srcOffsetBytes) =>
        ((HostBlock)src).Data.AsSpan(checked((int)srcOffsetBytes), dst.Length).CopyTo(dst);

    public void Fill(Tensor r, double value)
    {
        if (!r.IsContiguous)
            throw new InvalidOperationException("internal: fill takes a contiguous tensor");
        int n = r.NumEl;
        switch (r.DType)
        {
            case DType.Float32:
                r.Span<float>().Fill((float)value);
                break;
            case DType.Float64:
                r.Span<double>().Fill(value);
                break;
            case DType.Int32:
                r.Span<int>().Fill((int)value);
                break;
            case DType.Int64:
                r.Span<long>().Fill((long)value);
                break;
            case DType.BFloat16:
                r.Span<ushort>().Fill(BFloat16Bits.FromSingle((float)value));
                break;
            case DType.Float16:
                r.Span<Half>().Fill((Half)value);
                break;
            default:
                byte* p = r.BytePtr;
                for (int i = 0; i < n; i++)
                    CastKernels.Write(p, r.DType, i, value);
                break;
        }
    }

    public void Copy(Tensor src, Tensor dst)
    {
        if (src.DType == dst.DType)
        {
            CastKernels.CopyStrided(src, dst);
            return;
        }
        // Conversions run over contiguous memory: gather the source first, convert into dst (or a contiguous
        // temporary that is then scattered into dst's layout).
        using var sc = src.IsContiguous ? src.Alias() : Contiguous(src);
        if (dst.IsContiguous)
        {
            CastKernels.Convert(sc, dst);
            return;
        }
        using var converted = Tensor.Empty(dst.Shape, dst.DType);
        CastKernels.Convert(sc, converted);
        CastKernels.CopyStrided(converted, dst);
    }

    private static Tensor Contiguous(Tensor t)
    {
        var c = Tensor.Empty(t.Shape, t.DType);
        CastKernels.CopyStrided(t, c);
        return c;
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor r)
    {
        switch (r.DType)
        {
            case DType.Float32:
                BinaryKernels.Run<float>(op, a, b, r);
                break;
            case DType.Float64:
                BinaryKernels.Run<double>(op, a, b, r);
                break;
            case DType.Int32:
                BinaryKernels.Run<int>(op, a, b, r);
                break;
            case DType.Int64:
                BinaryKernels.Run<long>(op, a, b, r);
                break;
            default:
                throw NoKernel(op.ToString().ToLowerInvariant(), r.DType, "float32, float64, int32 or int64");
        }
    }

    public void Unary(UnaryOp op, Tensor x, Tensor r, double alpha)
    {
        if (r.DType == DType.Float32)
            UnaryKernels.Forward<float>(op, x, r, alpha);
        else if (r.DType == DType.Float64)
            UnaryKernels.Forward<double>(op, x, r, alpha);
        else
            throw NoKernel(op.ToString().ToLowerInvariant(), r.DType);
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor g, Tensor dx, double alpha)
    {
        if (dx.DType == DType.Float32)
            UnaryKernels.Backward<float>(op, x, y, g, dx, alpha);
        else if (dx.DType == DType.Float64)
            UnaryKernels.Backward<double>(op, x, y, g, dx, alpha);
        else
            throw NoKernel(op.ToString().ToLowerInvariant() + " backward", dx.DType);
    }

    public void Clamp(Tensor x, Tensor r, double lo, double hi)
    {
        switch (x.DType)
        {
            case DType.Float32:
                UnaryKernels.Clamp<float>(x, r, lo, hi);
                break;
            case DType.Float64:
                UnaryKernels.Clamp<double>(x, r, lo, hi);
                break;
            case DType.Int32:
                UnaryKernels.Clamp<int>(x, r, lo, hi);
                break;
            case DType.Int64:
                UnaryKernels.Clamp<long>(x, r, lo, hi);
                break;
            default:
                throw NoKernel("clamp", x.DType, "float or int32/int64");
        }
    }

    public void Compare(CompareOp op, Tensor a, Tensor b, Tensor r)
    {
        switch (a.DType)
        {
            case DType.Float32:
                CompareKernels.Run<float>(op, a, b, r);
                break;
            case DType.Float64:
                CompareKernels.Run<double>(op, a, b, r);
                break;
            case DType.Int32:
                CompareKernels.Run<int>(op, a, b, r);
                break;
            case DType.Int64:
                CompareKernels.Run<long>(op, a, b, r);
                break;
            default:
                throw NoKernel(op.ToString().ToLowerInvariant(), a.DType, "float32, float64, int32 or int64");
        }
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor r) => CompareKernels.Where(condition, a, b, r);

    public void Gather(Tensor x, int dim, Tensor index, Tensor r) => IndexKernels.Gather(x, dim, index, r);

    public void ScatterAdd(Tensor r, int dim, Tensor index, Tensor src)
    {
        switch (r.DType)
        {
            case DType.Float32:
                IndexKernels.ScatterAdd<float>(r, dim, index, src);
                break;
            case DType.Float64:
                IndexKernels.ScatterAdd<double>(r, dim, index, src);
                break;
            case DType.Int32:
                IndexKernels.ScatterAdd<int>(r, dim, index, src);
                break;
            case DType.Int64:
                IndexKernels.ScatterAdd<long>(r, dim, index, src);
                break;
            default:
                throw NoKernel("scatter_add", r.DType, "float32, float64, int32 or int64");
        }
    }

    public void Scatter(Tensor r, int dim, Tensor index, Tensor src) => IndexKernels.Scatter(r, dim, index, src);

    public void Bernoulli(Tensor r, Generator generator, ulong seed, ulong start, double p, double value)
    {
        int n = r.NumEl;
        byte* ptr = r.BytePtr;
        var dtype = r.DType;
        if (dtype == DType.Float32)
        {
            float v = (float)value;
            float* f = (float*)ptr;
            CpuThreads.For(n, n * 8L, (a, b) =>
            {
                for (int i = a; i < b; i++)
                    f[i] = Philox.ToUniform(Philox.At(seed, start + (ulong)(i >> 2), i & 3)) < p ? v : 0f;
            });
            return;
        }
        CpuThreads.For(n, n * 8L, (a, b) =>
        {
            for (int i = a; i < b; i++)
                CastKernels.Write(
                    ptr,
                    dtype,
                    i,
                    Philox.ToUniform(Philox.At(seed, start + (ulong)(i >> 2), i & 3)) < p ? value : 0
                );
        });
    }

    /// <summary>The CPU records no graphs: a captured step needs a device whose work is queued on a stream.</summary>
    public bool Capturing => false;

    public IDeviceGraph CaptureGraph(Action step, int warmup) =>
        throw new NotSupportedException("graph capture needs a CUDA device (train --cuda-graph with --device cuda)");

    private static DTypeMismatchException NoKernel(string op, DType t, string accepted = "float32 or float64") =>
        new($"{op}: dtype {t.TorchName()} is not supported on the cpu (accepted: {accepted})");
}
