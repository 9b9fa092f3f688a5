using System.Runtime.InteropServices;
using HpcEngine.Cuda.Interop;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Cuda;

/// <summary>Device memory from cuMemAlloc, returned on dispose (never by a finalizer on another thread).</summary>
public sealed class DeviceBuffer : IDisposable
{
    private readonly CudaContext _owner;
    private readonly bool _owns;
    internal DeviceBuffer(CudaContext owner, ulong pointer, long bytes, bool owns = true) => (_owner, Pointer, Bytes, _owns) = (owner, pointer, bytes, owns);

    /// <summary>A view of device memory someone else owns (a cuda tensor's): disposing it frees nothing.</summary>
    internal static DeviceBuffer View(CudaContext owner, ulong pointer, long bytes) => new(owner, pointer, bytes, owns: false);

    public ulong Pointer { get; private set; }
    public long Bytes { get; }

    public void Dispose()
    {
        if (Pointer == 0) return;
        if (!_owns)
        {
            Pointer = 0;
            return;
        }
        _owner.MakeCurrent();
        Driver.Check(Driver.cuMemFree(Pointer));
        Pointer = 0;
    }
}

/// <summary>A loaded kernel module and its functions by name.</summary>
public sealed class KernelModule : IDisposable
{
    private readonly CudaContext _owner;
    private IntPtr _module;
    private readonly Dictionary<string, IntPtr> _functions = new(StringComparer.Ordinal);

    internal KernelModule(CudaContext owner, IntPtr module) => (_owner, _module) = (owner, module);

    /// <summary>The entry point <paramref name="name"/> (an extern "C" __global__ function).</summary>
    public IntPtr Function(string name)
    {
        if (_functions.TryGetValue(name, out var f)) return f;
        _owner.MakeCurrent();
        Driver.Check(Driver.cuModuleGetFunction(out f, _module, name));
        return _functions[name] = f;
    }

    public void Dispose()
    {
        if (_module == IntPtr.Zero) return;
        _owner.MakeCurrent();
        Driver.Check(Driver.cuModuleUnload(_module));
        _module = IntPtr.Zero;
    }
}

/// <summary>Device N's primary context and one stream: memory, copies, kernel modules compiled by NVRTC for the
/// device's architecture, checked launches. The first slice of the CUDA backend (docs/ARCHITECTURE.md): enough to run
/// and check the kernels; the device tensor type and the caching allocator build on it.</summary>
public sealed unsafe class CudaContext : IDisposable, ICudaStream
{
    private IntPtr _context, _stream;
    private readonly int _device;
    private readonly Dictionary<string, KernelModule> _modules = new();
    private CublasHandle? _cublas;

    public CudaDeviceInfo Device { get; }

    /// <summary>The context's caching allocator (what device tensors allocate from).</summary>
    public Memory.CachingAllocator Memory { get; }

    /// <summary>The context's stream (as the allocator's stream key).</summary>
    public IntPtr Stream => _stream;

    private CudaContext(CudaDeviceInfo device, int handle, IntPtr context, IntPtr stream)
    {
        (Device, _device, _context, _stream) = (device, handle, context, stream);
        Memory = new Memory.CachingAllocator(new Memory.DriverMemory(this));
    }

    /// <summary>Opens cuda:<paramref name="index"/>; throws <see cref="CudaException"/> or
    /// <see cref="CudaLibraryNotFoundException"/> saying what is missing.</summary>
    public static CudaContext Open(int index = 0)
    {
        var report = CudaDevices.Probe();
        if (!report.HasDevice) throw new CudaException($"cuda:{index} is not available: {report.Problem}");
        if (index < 0 || index >= report.Devices.Count) throw new ArgumentOutOfRangeException(nameof(index), $"cuda:{index} does not exist: this machine has {report.Devices.Count} device(s)");
        Driver.Check(Driver.cuDeviceGet(out int dev, index));
        Driver.Check(Driver.cuDevicePrimaryCtxRetain(out var ctx, dev));
        Driver.Check(Driver.cuCtxSetCurrent(ctx));
        Driver.Check(Driver.cuStreamCreate(out var stream, 1 /* non-blocking */));
        return new CudaContext(report.Devices[index], dev, ctx, stream);
    }

    /// <summary>The driver's current context is per thread: every entry point sets it.</summary>
    internal void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_context == IntPtr.Zero, this);
        Driver.Check(Driver.cuCtxSetCurrent(_context));
    }

    public DeviceBuffer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        MakeCurrent();
        Driver.Check(Driver.cuMemAlloc(out ulong p, (nuint)Math.Max(bytes, 1)));
        return new DeviceBuffer(this, p, bytes);
    }

    public DeviceBuffer Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        var buffer = Allocate((long)data.Length * sizeof(T));
        MakeCurrent();
        fixed (T* p = data) Driver.Check(Driver.cuMemcpyHtoDAsync(buffer.Pointer, p, (nuint)buffer.Bytes, _stream));
        Synchronize(); // the host span may go away as soon as we return
        return buffer;
    }

    public T[] Download<T>(DeviceBuffer buffer, int count) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if ((long)count * sizeof(T) > buffer.Bytes) throw new ArgumentOutOfRangeException(nameof(count), $"{count} elements do not fit a {buffer.Bytes}-byte buffer");
        var result = new T[count];
        MakeCurrent();
        fixed (T* p = result) Driver.Check(Driver.cuMemcpyDtoHAsync(p, buffer.Pointer, (nuint)((long)count * sizeof(T)), _stream));
        Synchronize();
        return result;
    }

    /// <summary>Copies host bytes into <paramref name="dst"/> at <paramref name="offset"/> and waits for the copy.</summary>
    public void CopyFromHost(DeviceBuffer dst, long offset, ReadOnlySpan<byte> src)
    {
        ArgumentNullException.ThrowIfNull(dst);
        if (offset < 0 || offset + src.Length > dst.Bytes) throw new ArgumentOutOfRangeException(nameof(offset), $"{src.Length} bytes at {offset} do not fit a {dst.Bytes}-byte buffer");
        if (src.Length == 0) return;
        MakeCurrent();
        fixed (byte* p = src) Driver.Check(Driver.cuMemcpyHtoDAsync(dst.Pointer + (ulong)offset, p, (nuint)src.Length, _stream));
        Synchronize();
    }

    /// <summary>Copies bytes of <paramref name="src"/> at <paramref name="offset"/> to the host and waits for the copy.</summary>
    public void CopyToHost(Span<byte> dst, DeviceBuffer src, long offset)
    {
        ArgumentNullException.ThrowIfNull(src);
        if (offset < 0 || offset + dst.Length > src.Bytes) throw new ArgumentOutOfRangeException(nameof(offset), $"{dst.Length} bytes at {offset} are outside a {src.Bytes}-byte buffer");
        if (dst.Length == 0) return;
        MakeCurrent();
        fixed (byte* p = dst) Driver.Check(Driver.cuMemcpyDtoHAsync(p, src.Pointer + (ulong)offset, (nuint)dst.Length, _stream));
        Synchronize();
    }

    /// <summary>Loads one of the engine's kernel files for this device: the ahead-of-time fatbin when an up-to-date one
    /// is found and holds code for this device (<see cref="KernelImages"/>), else NVRTC's build (through the disk cache).</summary>
    public KernelModule LoadKernels(string file)
    {
        MakeCurrent();
        IntPtr module;
        if (KernelImages.FindFatbin(file, out _) is { } fatbin)
        {
            var image = File.ReadAllBytes(fatbin);
            int status;
            fixed (byte* p = image) status = Driver.cuModuleLoadData(out module, p);
            if (status == Driver.Success) return new KernelModule(this, module);
            // No code for this architecture in it (or a driver too old for its PTX): NVRTC builds for this device.
        }
        var compiled = NvrtcCompiler.CompileCached(file, Device.Architecture);
        fixed (byte* image = compiled.Image) Driver.Check(Driver.cuModuleLoadData(out module, image));
        return new KernelModule(this, module);
    }

    /// <summary>Launches <paramref name="function"/> on this context's stream with arguments passed by value (device
    /// pointers as ulong, scalars, or blittable structs laid out as the kernel's), and checks the launch. The argument
    /// values are packed into one stack buffer (no native allocation per launch: launches are the hot path of small
    /// models).</summary>
    public void Launch(IntPtr function, uint grid, uint block, uint sharedBytes, params object[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        MakeCurrent();
        int n = args.Length;
        Span<int> offsets = stackalloc int[Math.Max(1, n)];
        int total = 0;
        for (int i = 0; i < n; i++)
        {
            int size = ArgumentSize(args[i]);
            total = (total + 7) & ~7; // every slot 8-aligned: enough for any kernel parameter we pass
            offsets[i] = total;
            total += size;
        }
        byte* buffer = stackalloc byte[Math.Max(8, total + 8)];
        byte* aligned = (byte*)(((nuint)buffer + 7) & ~(nuint)7);
        var pointers = stackalloc void*[Math.Max(1, n)];
        for (int i = 0; i < n; i++)
        {
            byte* at = aligned + offsets[i];
            switch (args[i])
            {
                case ulong v: *(ulong*)at = v; break;
                case long v: *(long*)at = v; break;
                case int v: *(int*)at = v; break;
                case uint v: *(uint*)at = v; break;
                case float v: *(float*)at = v; break;
                case double v: *(double*)at = v; break;
                default: Marshal.StructureToPtr(args[i], (IntPtr)at, fDeleteOld: false); break;
            }
            pointers[i] = at;
        }
        Driver.Check(Driver.cuLaunchKernel(function, grid, 1, 1, block, 1, 1, sharedBytes, _stream, pointers, null));
    }

    private static int ArgumentSize(object arg) => arg switch
    {
        ulong or long or double => 8,
        int or uint or float => 4,
        null => throw new ArgumentNullException(nameof(arg), "a kernel argument is null"),
        _ => Marshal.SizeOf(arg.GetType()),
    };

    /// <summary>Median milliseconds of <paramref name="iterations"/> runs of <paramref name="enqueue"/>, timed with
    /// events on the stream (after <paramref name="warmup"/> untimed runs).</summary>
    public double TimeMilliseconds(Action enqueue, int iterations, int warmup = 3)
    {
        ArgumentNullException.ThrowIfNull(enqueue);
        for (int i = 0; i < warmup; i++) enqueue();
        Synchronize();
        var times = new double[iterations];
        MakeCurrent();
        Driver.Check(Driver.cuEventCreate(out var start, 0));
        Driver.Check(Driver.cuEventCreate(out var end, 0));
        try
        {
            for (int i = 0; i < iterations; i++)
            {
                Driver.Check(Driver.cuEventRecord(start, _stream));
                enqueue();
                Driver.Check(Driver.cuEventRecord(end, _stream));
                Driver.Check(Driver.cuEventSynchronize(end));
                Driver.Check(Driver.cuEventElapsedTime(out float ms, start, end));
                times[i] = ms;
            }
        }
        finally
        {
            Driver.cuEventDestroy(start);
            Driver.cuEventDestroy(end);
        }
        Array.Sort(times);
        return times[iterations / 2];
    }

    /// <summary>True between <see cref="BeginCapture"/> and <see cref="EndCapture"/>: work on the stream is recorded,
    /// not run.</summary>
    public bool Capturing => _capture != null;

    private GraphCapture? _capture;

    GraphCapture? ICudaStream.Capture => _capture;

    /// <summary>Starts recording the stream's work into a graph (see <see cref="CudaGraph"/>), allocating from
    /// <paramref name="pool"/>. Thread-local mode: other threads may keep using the driver meanwhile.</summary>
    internal void BeginCapture(GraphCapture capture)
    {
        MakeCurrent();
        if (Capturing) throw new InvalidOperationException("this context is already capturing a graph");
        Memory.BeginPool(capture.Pool);
        int status = Driver.cuStreamBeginCapture(_stream, 1 /* CU_STREAM_CAPTURE_MODE_THREAD_LOCAL */);
        if (status != Driver.Success)
        {
            Memory.EndPool();
            Driver.Check(status);
        }
        _capture = capture;
    }

    /// <summary>Stops recording; returns the graph (to instantiate and destroy), or throws when the capture was
    /// invalidated (an illegal call during it) — the graph is then destroyed here.</summary>
    internal IntPtr EndCapture()
    {
        MakeCurrent();
        _capture = null;
        Memory.EndPool();
        int status = Driver.cuStreamEndCapture(_stream, out var graph);
        if (status != Driver.Success && graph != IntPtr.Zero) Driver.cuGraphDestroy(graph);
        Driver.Check(status);
        return graph;
    }

    int ICudaStream.DeviceIndex => Device.Index;

    /// <summary>The engine's kernel <paramref name="name"/> from <paramref name="file"/>, its module loaded once.</summary>
    internal IntPtr Function(string file, string name)
    {
        lock (_modules)
        {
            if (!_modules.TryGetValue(file, out var m)) _modules[file] = m = LoadKernels(file);
            return m.Function(name);
        }
    }

    IntPtr ICudaStream.Function(string file, string name) => Function(file, name);

    void ICudaStream.CopyHostToDevice(ulong dst, ReadOnlySpan<byte> src)
    {
        MakeCurrent();
        fixed (byte* p = src) Driver.Check(Driver.cuMemcpyHtoDAsync(dst, p, (nuint)src.Length, _stream));
        Synchronize(); // the host span may go away as soon as we return
    }

    void ICudaStream.CopyDeviceToHost(Span<byte> dst, ulong src)
    {
        MakeCurrent();
        fixed (byte* p = dst) Driver.Check(Driver.cuMemcpyDtoHAsync(p, src, (nuint)dst.Length, _stream));
        Synchronize();
    }

    void ICudaStream.CopyDeviceToDevice(ulong dst, ulong src, long bytes)
    {
        MakeCurrent();
        Driver.Check(Driver.cuMemcpyDtoDAsync(dst, src, (nuint)bytes, _stream));
    }

    void ICudaStream.Memset(ulong dst, long bytes)
    {
        MakeCurrent();
        Driver.Check(Driver.cuMemsetD8Async(dst, 0, (nuint)bytes, _stream));
    }

    private CublasHandle Cublas => _cublas ??= new CublasHandle(this);

    void ICudaStream.GemmF32(bool transA, bool transB, int m, int n, int k, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int ldc, bool tf32) =>
        Cublas.GemmF32(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc, tf32);

    void ICudaStream.BeginCapture(GraphCapture capture) => BeginCapture(capture);

    IntPtr ICudaStream.EndCapture() => EndCapture();

    IntPtr ICudaStream.InstantiateGraph(IntPtr graph)
    {
        MakeCurrent();
        Driver.Check(Driver.cuGraphInstantiate(out var exec, graph, 0));
        return exec;
    }

    void ICudaStream.DestroyGraph(IntPtr graph)
    {
        MakeCurrent();
        Driver.cuGraphDestroy(graph);
    }

    void ICudaStream.LaunchGraph(IntPtr exec)
    {
        MakeCurrent();
        Driver.Check(Driver.cuGraphLaunch(exec, _stream));
    }

    void ICudaStream.DestroyGraphExec(IntPtr exec)
    {
        MakeCurrent();
        Driver.cuGraphExecDestroy(exec);
    }

    void ICudaStream.GemmStridedBatched(bool transA, bool transB, int m, int n, int k, ulong a, int lda, long strideA, ulong b, int ldb, long strideB,
        ulong c, int ldc, long strideC, int batch, bool bf16, bool tf32) =>
        Cublas.GemmStridedBatched(transA, transB, m, n, k, a, lda, strideA, b, ldb, strideB, c, ldc, strideC, batch, bf16, tf32);

    void ICudaStream.GemmBf16(bool transA, bool transB, int m, int n, int k, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int ldc) =>
        Cublas.GemmBf16(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc);

    /// <summary>Waits for everything queued on the stream; an asynchronous kernel fault surfaces here.</summary>
    public void Synchronize()
    {
        if (Capturing) throw new InvalidOperationException("synchronising the stream during a CUDA graph capture is not allowed (nothing has run yet)");
        MakeCurrent();
        Driver.Check(Driver.cuStreamSynchronize(_stream));
    }

    public void Dispose()
    {
        if (_context == IntPtr.Zero) return;
        Driver.cuCtxSetCurrent(_context);
        Driver.cuStreamSynchronize(_stream);
        _cublas?.Dispose();
        foreach (var m in _modules.Values) m.Dispose();
        _modules.Clear();
        Memory.Dispose();
        Driver.cuStreamDestroy(_stream);
        Driver.cuDevicePrimaryCtxRelease(_device);
        _context = _stream = IntPtr.Zero;
    }
}
