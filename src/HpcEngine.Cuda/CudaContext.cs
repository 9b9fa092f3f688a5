using System.Runtime.InteropServices;
using HpcEngine.Cuda.Interop;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Cuda;

/// <summary>Device N's primary context and one stream: memory, copies, kernel modules compiled by NVRTC for the
/// device's architecture, checked launches. The first slice of the CUDA backend (docs/ARCHITECTURE.md): enough to run
/// and check the kernels; the device tensor type and the caching allocator build on it.</summary>
public sealed unsafe partial class CudaContext : IDisposable, ICudaStream
{
    // The owning handles (released once, in order: the stream before the context it keeps retained) and their raw
    // values, which the driver calls take while this context is not disposed.
    private readonly PrimaryContextHandle _contextHandle;
    private readonly StreamHandle _streamHandle;
    private IntPtr _context,
        _stream;
    private readonly Dictionary<string, KernelModule> _modules = new();
    private CublasHandle? _cublas;

    /// <summary>The device this context runs on.</summary>
    public CudaDeviceInfo Device { get; }

    /// <summary>The context's caching allocator (what device tensors allocate from).</summary>
    public Memory.CachingAllocator Memory { get; }

    /// <summary>The context's stream (as the allocator's stream key).</summary>
    public IntPtr Stream => _stream;

    private CudaContext(CudaDeviceInfo device, PrimaryContextHandle context, StreamHandle stream)
    {
        (Device, _contextHandle, _streamHandle) = (device, context, stream);
        (_context, _stream) = (context.DangerousGetHandle(), stream.DangerousGetHandle());
        Memory = new Memory.CachingAllocator(new Memory.DriverMemory(this));
    }

    /// <summary>Opens cuda:<paramref name="index"/>; throws <see cref="CudaException"/> or
    /// <see cref="CudaLibraryNotFoundException"/> saying what is missing.</summary>
    public static CudaContext Open(int index = 0)
    {
        var report = CudaDevices.Probe();
        if (!report.HasDevice)
            throw new CudaException($"cuda:{index} is not available: {report.Problem}");
        if (index < 0 || index >= report.Devices.Count)
            throw new ArgumentOutOfRangeException(
                nameof(index),
                $"cuda:{index} does not exist: this machine has {report.Devices.Count} device(s)"
            );
        Driver.Check(Driver.cuDeviceGet(out int dev, index));
        var ctx = PrimaryContextHandle.Retain(dev);
        try
        {
            Driver.Check(Driver.cuCtxSetCurrent(ctx.DangerousGetHandle()));
            var stream = StreamHandle.Create(
                ctx,
                1 /* non-blocking */
            );
            return new CudaContext(report.Devices[index], ctx, stream);
        }
        catch
        {
            ctx.Dispose();
            throw;
        }
    }

    /// <summary>The context handle that resources made in this context keep retained.</summary>
    internal PrimaryContextHandle ContextHandle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_context == IntPtr.Zero, this);
            return _contextHandle;
        }
    }

    /// <summary>The driver's current context is per thread: every entry point sets it.</summary>
    internal void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(_context == IntPtr.Zero, this);
        Driver.Check(Driver.cuCtxSetCurrent(_context));
    }

    /// <summary><paramref name="bytes"/> bytes of device memory from the context's caching allocator, contents
    /// undefined.</summary>
    public DeviceBuffer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        MakeCurrent();
        Driver.Check(Driver.cuMemAlloc(out ulong p, (nuint)Math.Max(bytes, 1)));
        return new DeviceBuffer(this, p, bytes);
    }

    /// <summary>A device buffer holding a copy of <paramref name="data"/>.</summary>
    public DeviceBuffer Upload<T>(ReadOnlySpan<T> data)
        where T : unmanaged
    {
        var buffer = Allocate((long)data.Length * sizeof(T));
        MakeCurrent();
        fixed (T* p = data)
            Driver.Check(Driver.cuMemcpyHtoDAsync(buffer.Pointer, p, (nuint)buffer.Bytes, _stream));
        Synchronize(); // the host span may go away as soon as we return
        return buffer;
    }

    /// <summary>The first <paramref name="count"/> elements of <paramref name="buffer"/>, copied to the host
    /// (synchronous).</summary>
    public T[] Download<T>(DeviceBuffer buffer, int count)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if ((long)count * sizeof(T) > buffer.Bytes)
            throw new ArgumentOutOfRangeException(
                nameof(count),
                $"{count} elements do not fit a {buffer.Bytes}-byte buffer"
            );
        var result = new T[count];
        MakeCurrent();
        fixed (T* p = result)
            Driver.Check(Driver.cuMemcpyDtoHAsync(p, buffer.Pointer, (nuint)((long)count * sizeof(T)), _stream));
        Synchronize();
        return result;
    }

    /// <summary>Copies host bytes into <paramref name="dst"/> at <paramref name="offset"/> and waits for the
    /// copy.</summary>
    public void CopyFromHost(DeviceBuffer dst, long offset, ReadOnlySpan<byte> src)
    {
        ArgumentNullException.ThrowIfNull(dst);
        if (offset < 0 || offset + src.Length > dst.Bytes)
            throw new ArgumentOutOfRangeException(
                nameof(offset),
                $"{src.Length} bytes at {offset} do not fit a {dst.Bytes}-byte buffer"
            );
        if (src.Length == 0)
            return;
        MakeCurrent();
        fixed (byte* p = src)
            Driver.Check(Driver.cuMemcpyHtoDAsync(dst.Pointer + (ulong)offset, p, (nuint)src.Length, _stream));
        Synchronize();
    }

    /// <summary>Copies bytes of <paramref name="src"/> at <paramref name="offset"/> to the host and waits for the
    /// copy.</summary>
    public void CopyToHost(Span<byte> dst, DeviceBuffer src, long offset)
    {
        ArgumentNullException.ThrowIfNull(src);
        if (offset < 0 || offset + dst.Length > src.Bytes)
            throw new ArgumentOutOfRangeException(
                nameof(offset),
                $"{dst.Length} bytes at {offset} are outside a {src.Bytes}-byte buffer"
            );
        if (dst.Length == 0)
            return;
        MakeCurrent();
        fixed (byte* p = dst)
            Driver.Check(Driver.cuMemcpyDtoHAsync(p, src.Pointer + (ulong)offset, (nuint)dst.Length, _stream));
        Synchronize();
    }

    /// <summary>Waits for everything queued on the stream; an asynchronous kernel fault surfaces here.</summary>
    public void Synchronize()
    {
        if (Capturing)
            throw new InvalidOperationException(
                "synchronising the stream during a CUDA graph capture is not allowed (nothing has run yet)"
            );
        MakeCurrent();
        Driver.Check(Driver.cuStreamSynchronize(_stream));
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_context == IntPtr.Zero)
            return;
        // Cleanup calls are unchecked on purpose: a failure here cannot be acted on, and throwing from Dispose would
        // hide the error (often a kernel fault) that is unwinding the stack.
        Driver.cuCtxSetCurrent(_context);
        Driver.cuStreamSynchronize(_stream);
        _cublas?.Dispose();
        foreach (var m in _modules.Values)
            m.Dispose();
        _modules.Clear();
        Memory.Dispose();
        _streamHandle.Dispose();
        _contextHandle.Dispose(); // released when the last resource made in it is
        _context = _stream = IntPtr.Zero;
    }
}
