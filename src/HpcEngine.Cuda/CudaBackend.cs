using System.Runtime.InteropServices;
using HpcEngine.Backends;
using HpcEngine.Cuda.Interop;
using HpcEngine.Distributed;

namespace HpcEngine.Cuda;

/// <summary>Makes <c>cuda:N</c> tensors available: after <see cref="Register"/>, <c>x.To(Device.Cuda())</c> moves a
/// tensor to the GPU and every op on it runs there (the primitives of <see cref="IBackend"/> as the engine's kernels
/// and cuBLAS, enqueued on the device's stream; the composites above them); data synchronises only when it leaves
/// the device. Memory comes from the context's caching allocator.</summary>
public static class CudaBackend
{
    private static CudaContext? _context;

    /// <summary>Opens cuda:<paramref name="device"/> (once) and registers it as the engine's CUDA device. Throws
    /// <see cref="CudaException"/> or <see cref="CudaLibraryNotFoundException"/> saying what is missing.</summary>
    public static CudaContext Register(int device = 0)
    {
        lock (typeof(CudaBackend))
        {
            if (_context == null)
            {
                _context = CudaContext.Open(device);
                DeviceBackends.Register(DeviceType.Cuda, new CudaDeviceBackend(_context));
                var context = _context;
                ProcessGroups.RegisterBackend("nccl", (_, tcp) =>
                    NcclProcessGroup.InitFromEnvironment(context, tcp.Timeout)
                );
            }
            return _context;
        }
    }

    /// <summary>fp32 matmuls on TF32 tensor cores (about 10 bits of mantissa in the products; off by
    /// default).</summary>
    public static bool AllowTf32 { get; set; }
}

/// <summary>The <see cref="IBackend"/> of one CUDA device: every primitive is a kernel launch (or a cuBLAS call)
/// on the context's stream. Arithmetic kernels are float32; casts cover every dtype, and copies, fills, gather and
/// where move any element size; other dtypes are refused by name. The op families live in the partial files beside
/// this one (Elementwise, Linalg, Rows, Nn).</summary>
internal sealed unsafe partial class CudaDeviceBackend(ICudaStream context) : IBackend
{
    private const uint Block = 256;

    public bool Capturing => context.Capturing;

    public IDeviceGraph CaptureGraph(Action step, int warmup) => CudaGraph.Capture(context, step, warmup);

    /// <summary>Refuses a host transfer while the stream is being captured: the copy would not run now (only on replay,
    /// from a host buffer long gone) and the synchronisation would invalidate the capture.</summary>
    private void NotWhileCapturing(string what)
    {
        if (context.Capturing)
            throw new InvalidOperationException(
                $"{what} during a CUDA graph capture: reading or writing device memory from the host (.Item(), "
                    + $"ToArray(), .To(Device.Cpu), moving a CPU tensor in, a host-side check) cannot be captured; "
                    + $"keep the inputs on the GPU in tensors allocated before the capture and copy into them before "
                    + $"each Replay()"
            );
    }

    /// <summary>Memory from the caching allocator, returned to it (not to the driver) on dispose.</summary>
    private sealed class CudaMemory(Memory.CachingAllocator allocator, Memory.DeviceBlock block, long bytes)
        : IBackendMemory
    {
        private int _freed;
        public ulong Pointer => block.Pointer;
        public long Bytes => bytes;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _freed, 1) == 0)
                allocator.Free(block);
        }
    }

    /// <summary>Shape and strides of up to 8 dims, laid out as native/kernels/elementwise.cu's struct
    /// Broadcast.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Broadcast
    {
        public int Ndim;
        public fixed long Shape[8];
        public fixed long AStride[8];
        public fixed long BStride[8];
    }

    /// <summary>native/include/hpc/strided.cuh's struct Broadcast3 (where: condition, a, b).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Broadcast3
    {
        public int Ndim;
        public fixed long Shape[8];
        public fixed long Stride[24];
    }

    private static Broadcast Layout(string op, Tensor r, Tensor a, Tensor? b = null)
    {
        if (r.Rank > 8)
            throw new ShapeMismatchException($"{op} on cuda: at most 8 dimensions (got {r.Rank})");
        var s = new Broadcast { Ndim = Math.Max(r.Rank, 1) };
        if (r.Rank == 0)
        {
            s.Shape[0] = 1;
            return s;
        }
        for (int d = 0; d < r.Rank; d++)
        {
            s.Shape[d] = r.Shape[d];
            s.AStride[d] = a.Strides[d];
            s.BStride[d] = b?.Strides[d] ?? 0;
        }
        return s;
    }

    private IntPtr Kernel(string file, string name) => context.Function(file, name);

    private static uint Grid(long n) => (uint)Math.Clamp((n + Block - 1) / Block, 1, 65535);

    private static uint Rows(long rows) => (uint)Math.Clamp(rows, 1, 65535);

    internal static ulong Ptr(Tensor t) =>
        ((CudaMemory)BackendTensors.DeviceMemory(t)).Pointer
        + (ulong)((long)BackendTensors.Offset(t) * t.DType.SizeOf());

    private static void Float32(string op, params Tensor[] ts)
    {
        foreach (var t in ts)
            if (t.DType != DType.Float32)
                throw new DTypeMismatchException(
                    $"{op} on cuda: only float32 has kernels so far (got {t.DType.TorchName()}); convert with "
                        + $".To(DType.Float32)"
                );
    }

    private static DeviceMismatchException NoKernel(string what) =>
        new($"{what} has no cuda kernel yet; move the tensor with .To(Device.Cpu) for this op");

    public IBackendMemory Allocate(Device device, long bytes)
    {
        if (device.Index != context.DeviceIndex)
            throw new DeviceMismatchException(
                $"cuda:{device.Index} is not open: the CUDA backend was registered for cuda:{context.DeviceIndex}"
            );
        var block = context.Memory.Allocate(Math.Max(bytes, 1), context.Stream);
        return new CudaMemory(context.Memory, block, bytes);
    }

    public void CopyFromHost(IBackendMemory dst, long dstOffsetBytes, ReadOnlySpan<byte> src)
    {
        if (src.Length == 0)
            return;
        NotWhileCapturing("a host-to-device copy");
        context.CopyHostToDevice(((CudaMemory)dst).Pointer + (ulong)dstOffsetBytes, src);
    }

    public void CopyToHost(Span<byte> dst, IBackendMemory src, long srcOffsetBytes)
    {
        if (dst.Length == 0)
            return;
        NotWhileCapturing("a device-to-host copy");
        context.CopyDeviceToHost(dst, ((CudaMemory)src).Pointer + (ulong)srcOffsetBytes);
    }

    public void Fill(Tensor r, double value)
    {
        if (r.NumEl == 0)
            return;
        if (value == 0 && r.IsContiguous)
        {
            context.Memset(Ptr(r), (long)r.NumEl * r.DType.SizeOf()); // zero bits are zero in every dtype
            return;
        }
        if (!r.IsContiguous)
            throw NoKernel("a fill of a non-contiguous view");
        // The value's bits in r's dtype (the CPU's conversion rules), passed by value to the kernel.
        ulong pattern = 0;
        BackendTensors.WriteScalar((byte*)&pattern, r.DType, value);
        context.Launch(
            Kernel("elementwise.cu", "fill" + Bits(r)),
            Grid(r.NumEl),
            Block,
            0,
            Ptr(r),
            pattern,
            (long)r.NumEl
        );
    }

    public void Copy(Tensor src, Tensor dst)
    {
        if (dst.NumEl == 0)
            return;
        if (!dst.IsContiguous)
        {
            // Into a strided view: same dtype only (the casts write contiguous outputs).
            if (src.DType != dst.DType)
                throw NoKernel(
                    $"a cast into a non-contiguous view ({src.DType.TorchName()} → {dst.DType.TorchName()})"
                );
            context.Launch(
                Kernel("elementwise.cu", "strided_copy_any" + Bits(src)),
                Grid(dst.NumEl),
                Block,
                0,
                Ptr(src),
                Ptr(dst),
                (long)dst.NumEl,
                Layout("copy", dst, src, dst)
            );
            return;
        }
        if (src.DType == dst.DType)
        {
            if (src.IsContiguous)
            {
                context.CopyDeviceToDevice(Ptr(dst), Ptr(src), (long)dst.NumEl * dst.DType.SizeOf());
                return;
            }
            context.Launch(
                Kernel("elementwise.cu", "strided_copy" + Bits(src)),
                Grid(dst.NumEl),
                Block,
                0,
                Ptr(src),
                Ptr(dst),
                (long)dst.NumEl,
                Layout("copy", dst, src)
            );
            return;
        }
        // A cast: one kernel where there is one, else through float32 (exact for every value bf16, fp16, bool, uint8
        // and int32 hold; int64 beyond 2^24 rounds as float32 would).
        string? kernel = CastKernel(src.DType, dst.DType);
        using var s = src.IsContiguous ? BackendTensors.Alias(src) : BackendTensors.Contiguous(src);
        if (kernel == null)
        {
            if (CastKernel(src.DType, DType.Float32) == null || CastKernel(DType.Float32, dst.DType) == null)
                throw NoKernel($"the cast {src.DType.TorchName()} → {dst.DType.TorchName()}");
            using var mid = BackendTensors.Empty(dst.ShapeArray, DType.Float32, dst.Device);
            Copy(s, mid);
            Copy(mid, dst);
            return;
        }
        context.Launch(Kernel("cast.cu", kernel), Grid(dst.NumEl), Block, 0, Ptr(s), Ptr(dst), (long)dst.NumEl);
    }

    /// <summary>The cast.cu kernel converting <paramref name="from"/> to <paramref name="to"/>, or null.</summary>
    private static string? CastKernel(DType from, DType to) =>
        (from, to) switch
        {
            (DType.Float32, DType.BFloat16) => "f32_to_bf16",
            (DType.BFloat16, DType.Float32) => "bf16_to_f32",
            (DType.Float32, DType.Float16) => "f32_to_f16",
            (DType.Float16, DType.Float32) => "f16_to_f32",
            (DType.Float32, DType.Float64) => "f32_to_f64",
            (DType.Float64, DType.Float32) => "f64_to_f32",
            (DType.Float32, DType.Int64) => "f32_to_i64",
            (DType.Float32, DType.Int32) => "f32_to_i32",
            (DType.Float32, DType.Bool) => "f32_to_bool",
            (DType.Int64, DType.Float32) => "i64_to_f32",
            (DType.Int32, DType.Float32) => "i32_to_f32",
            (DType.Bool or DType.UInt8, DType.Float32) => "u8_to_f32",
            (DType.Int32, DType.Int64) => "i32_to_i64",
            (DType.Int64, DType.Int32) => "i64_to_i32",
            (DType.Bool or DType.UInt8, DType.Int64) => "u8_to_i64",
            (DType.Int64, DType.Bool) => "i64_to_bool",
            _ => null,
        };
}
