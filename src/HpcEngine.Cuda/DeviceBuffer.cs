using System.Runtime.InteropServices;
using HpcEngine.Cuda.Interop;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Cuda;

/// <summary>Device memory from cuMemAlloc, returned on dispose (never by a finalizer on another thread).</summary>
public sealed class DeviceBuffer : IDisposable
{
    private readonly CudaContext _owner;
    private readonly bool _owns;

    internal DeviceBuffer(CudaContext owner, ulong pointer, long bytes, bool owns = true) =>
        (_owner, Pointer, Bytes, _owns) = (owner, pointer, bytes, owns);

    /// <summary>A view of device memory someone else owns (a cuda tensor's): disposing it frees nothing.</summary>
    internal static DeviceBuffer View(CudaContext owner, ulong pointer, long bytes) =>
        new(owner, pointer, bytes, owns: false);

    /// <summary>The device address of the buffer's first byte.</summary>
    public ulong Pointer { get; private set; }

    /// <summary>The buffer's size in bytes.</summary>
    public long Bytes { get; }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (Pointer == 0)
            return;
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
