using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda.Memory;

/// <summary>Device memory and events from the CUDA driver, for the <see cref="CachingAllocator"/> of a
/// context.</summary>
internal sealed class DriverMemory(CudaContext context) : IDeviceMemory
{
    public ulong Allocate(long bytes)
    {
        context.MakeCurrent();
        Driver.Check(Driver.cuMemAlloc(out ulong p, (nuint)bytes));
        return p;
    }

    public void Free(ulong pointer)
    {
        context.MakeCurrent();
        Driver.Check(Driver.cuMemFree(pointer));
    }

    public Func<bool> RecordEvent(IntPtr stream)
    {
        context.MakeCurrent();
        // A poll that is dropped before it saw the event complete leaves the event to the handle's finalizer.
        var evt = EventHandle.Create(
            context.ContextHandle,
            2 /* disable timing */
        );
        Driver.Check(Driver.cuEventRecord(evt.DangerousGetHandle(), stream));
        bool done = false;
        return () =>
        {
            if (done)
                return true;
            int status = Driver.cuEventQuery(evt.DangerousGetHandle());
            if (status == Driver.ErrorNotReady)
                return false;
            Driver.Check(status);
            evt.Dispose();
            return done = true;
        };
    }
}
