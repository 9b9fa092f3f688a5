using HpcEngine.Backends;
using HpcEngine.Cuda.Interop;
using HpcEngine.Cuda.Memory;

namespace HpcEngine.Cuda;

/// <summary>A recorded sequence of the engine's GPU work — typically a whole training step (forward, backward,
/// optimizer) — replayed with one launch: the per-kernel launch cost on the host (the bottleneck of small models) is
/// paid once at capture.
/// <para>How it works, and the rules it implies (PyTorch's torch.cuda.graphs follows the same ones):</para>
/// <list type="bullet">
/// <item><see cref="Capture(CudaContext, Action, int)"/> first runs the step eagerly <c>warmup</c> times (lazy state such as gradients and
/// momentum buffers is created, kernels are loaded), then runs it once more while the stream records instead of
/// executing. Host code in the step runs only at capture: scalars it passes to kernels are frozen.</item>
/// <item>Tensors the step allocates come from a private memory pool that only this graph uses, so their addresses
/// stay valid for every replay. Tensors it keeps (the loss, say) hold the new values after each replay.</item>
/// <item>Inputs are static: allocate them on the GPU before the capture and copy each batch into them (an in-place
/// device copy) before <see cref="Replay"/>. Nothing may cross to or from the host inside the step (no .Item(), no
/// .To(Device.Cpu)): that is refused with an InvalidOperationException and the capture is abandoned cleanly.</item>
/// <item>Dropout and other draws take fresh numbers on every replay — the very numbers an eager step would take (each
/// generator drawn from is advanced per replay; its seed is the one at capture). The optimizers read the
/// learning rate from device memory that <c>Optimizer.Lr</c>'s setter writes, so setting it between replays (a
/// schedule) takes effect; SGD with momentum and Adam/AdamW capture (Adam advances its step count and bias
/// corrections on the device). Lazy state (momentum buffers, Adam's moments) must exist before the capture: warm up
/// at least once unless the step already ran.</item>
/// </list></summary>
public sealed class CudaGraph : IDisposable, HpcEngine.Backends.IDeviceGraph
{
    private readonly ICudaStream _stream;
    private readonly GraphCapture _capture;
    private IntPtr _exec;
    private long _replays;

    private CudaGraph(ICudaStream stream, IntPtr exec, GraphCapture capture) =>
        (_stream, _exec, _capture) = (stream, exec, capture);

    /// <summary>Blocks of device memory reserved for this graph's tensors.</summary>
    public int PoolBlocks => _capture.Pool.Blocks;

    /// <summary>Runs <paramref name="step"/> eagerly <paramref name="warmup"/> times, then records it (see the class
    /// remarks). Throws what the step threw, or <see cref="CudaException"/> when the driver invalidated the capture;
    /// either way no graph is left behind and the context is usable.</summary>
    public static CudaGraph Capture(CudaContext context, Action step, int warmup = 1)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Capture((ICudaStream)context, step, warmup);
    }

    internal static CudaGraph Capture(ICudaStream stream, Action step, int warmup)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentOutOfRangeException.ThrowIfNegative(warmup);
        for (int i = 0; i < warmup; i++)
            step();
        stream.Synchronize();
        var capture = new GraphCapture(new MemoryPool());
        var pool = capture.Pool;
        stream.BeginCapture(capture);
        IntPtr graph;
        try
        {
            step();
        }
        catch
        {
            try
            {
                stream.DestroyGraph(stream.EndCapture());
            }
            catch (CudaException)
            { /* the capture was invalidated by the failure itself */
            }
            Release(stream, capture);
            throw;
        }
        try
        {
            graph = stream.EndCapture();
        }
        catch
        {
            Release(stream, capture);
            throw;
        }
        capture.Seal();
        try
        {
            return new CudaGraph(stream, stream.InstantiateGraph(graph), capture);
        }
        catch
        {
            Release(stream, capture);
            throw;
        }
        finally
        {
            stream.DestroyGraph(graph); // the executable keeps its own copy
        }
    }

    private static void Release(ICudaStream stream, GraphCapture capture)
    {
        foreach (var r in capture.Random.Values)
            r.Base.Dispose();
        stream.Memory.ReleasePool(capture.Pool);
    }

    /// <summary>Enqueues the recorded work on the context's stream (asynchronous, like any op). Random draws in the
    /// step (dropout) take the numbers an eager step would take now: replay k reads its generators' counters shifted
    /// by (k − 1) spans, and from the second replay on each generator is advanced by its span, as an eager step
    /// advances it.</summary>
    public void Replay()
    {
        ObjectDisposedException.ThrowIf(_exec == IntPtr.Zero, this);
        _replays++;
        foreach (var (generator, r) in _capture.Random)
        {
            if (_replays > 1)
                generator.Offset += r.Span;
            // The capture already reserved the first replay's numbers; later ones continue from the generator.
            ulong shift = generator.Offset - r.Span - r.First;
            r.Base.Fill(shift);
        }
        _stream.LaunchGraph(_exec);
    }

    /// <summary>Waits for replays in flight, frees the executable and hands the pool's memory back to the
    /// cache.</summary>
    public void Dispose()
    {
        if (_exec == IntPtr.Zero)
            return;
        _stream.Synchronize();
        _stream.DestroyGraphExec(_exec);
        _exec = IntPtr.Zero;
        Release(_stream, _capture);
    }
}
