using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace HpcEngine.Cuda.Interop;

/// <summary>The native resources of the CUDA backend as <see cref="SafeHandle"/>s: each is released exactly once —
/// by its owner's Dispose, or by the runtime's critical finalizer if an owner is dropped undisposed — and a resource
/// made in a context keeps that context retained until it is released (a stream outliving its context would be a
/// dangling handle). Owners pass the raw value to the driver while they hold the handle (they refuse use after
/// Dispose).
/// <para>Every release call is deliberately unchecked: a failure at cleanup cannot be acted on, and throwing from a
/// finalizer or a Dispose would hide the error (often a kernel fault) that is unwinding the stack.</para></summary>
internal sealed class PrimaryContextHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private int _device;

    private PrimaryContextHandle()
        : base(ownsHandle: true) { }

    /// <summary>Retains device <paramref name="device"/>'s primary context (the runtime API's context too).</summary>
    public static PrimaryContextHandle Retain(int device)
    {
        var h = new PrimaryContextHandle { _device = device };
        Driver.Check(Driver.cuDevicePrimaryCtxRetain(out var context, device));
        h.SetHandle(context);
        return h;
    }

    protected override bool ReleaseHandle() => Driver.cuDevicePrimaryCtxRelease(_device) == Driver.Success;
}

/// <summary>A resource that lives in a context: holds a reference on the context handle, and makes the context
/// current on the releasing thread (a finalizer's thread has none) before destroying the resource.</summary>
internal abstract class ContextBoundHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    private PrimaryContextHandle? _context;

    protected ContextBoundHandle()
        : base(ownsHandle: true) { }

    /// <summary>Takes ownership of <paramref name="value"/>, made in <paramref name="context"/> just now.</summary>
    public static THandle Own<THandle>(PrimaryContextHandle context, IntPtr value)
        where THandle : ContextBoundHandle, new()
    {
        var h = new THandle();
        bool added = false;
        context.DangerousAddRef(ref added);
        h._context = context;
        h.SetHandle(value);
        return h;
    }

    protected sealed override bool ReleaseHandle()
    {
        if (_context == null)
            return Destroy(handle);
        Driver.cuCtxSetCurrent(_context.DangerousGetHandle());
        bool ok = Destroy(handle);
        _context.DangerousRelease();
        return ok;
    }

    /// <summary>The resource's destroy call (unchecked: see the class summary).</summary>
    protected abstract bool Destroy(IntPtr value);
}

/// <summary>A CUDA stream (cuStreamCreate / cuStreamDestroy).</summary>
internal sealed class StreamHandle : ContextBoundHandle
{
    public static StreamHandle Create(PrimaryContextHandle context, uint flags)
    {
        Driver.Check(Driver.cuStreamCreate(out var stream, flags));
        return Own<StreamHandle>(context, stream);
    }

    protected override bool Destroy(IntPtr value) => Driver.cuStreamDestroy(value) == Driver.Success;
}

/// <summary>A CUDA event (cuEventCreate / cuEventDestroy); short-lived ones are used in a <c>using</c>.</summary>
internal sealed class EventHandle : ContextBoundHandle
{
    public static EventHandle Create(PrimaryContextHandle context, uint flags)
    {
        Driver.Check(Driver.cuEventCreate(out var evt, flags));
        return Own<EventHandle>(context, evt);
    }

    protected override bool Destroy(IntPtr value) => Driver.cuEventDestroy(value) == Driver.Success;
}

/// <summary>A loaded kernel module (cuModuleLoadData / cuModuleUnload).</summary>
internal sealed class KernelModuleHandle : ContextBoundHandle
{
    protected override bool Destroy(IntPtr value) => Driver.cuModuleUnload(value) == Driver.Success;
}

/// <summary>A cuBLAS handle (cublasCreate / cublasDestroy).</summary>
internal sealed class CublasLibraryHandle : ContextBoundHandle
{
    public static CublasLibraryHandle Create(PrimaryContextHandle context)
    {
        Cublas.Check(Cublas.cublasCreate(out var handle));
        return Own<CublasLibraryHandle>(context, handle);
    }

    protected override bool Destroy(IntPtr value) => Cublas.cublasDestroy(value) == Cublas.Success;
}

/// <summary>An NCCL communicator (ncclCommInitRank / ncclCommDestroy).</summary>
internal sealed class NcclCommHandle : ContextBoundHandle
{
    private bool _aborted;

    /// <summary>ncclCommAbort (after an asynchronous error or a timeout): the communicator is torn down at once, so
    /// the release does not destroy it again.</summary>
    public void Abort()
    {
        if (_aborted || IsClosed)
            return;
        _aborted = true;
        Nccl.ncclCommAbort(handle);
    }

    protected override bool Destroy(IntPtr value) => _aborted || Nccl.ncclCommDestroy(value) == Nccl.Success;
}
