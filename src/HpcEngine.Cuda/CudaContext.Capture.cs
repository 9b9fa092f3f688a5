using System.Runtime.InteropServices;
using HpcEngine.Cuda.Interop;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Cuda;

/// <summary>A context's CUDA-graph capture: while it records, the stream's work is recorded, not run, and allocations
/// come from the graph's pool.</summary>
public sealed unsafe partial class CudaContext
{
    /// <summary>True between <see cref="BeginCapture"/> and <see cref="EndCapture"/>: work on the stream is recorded,
    /// not run.</summary>
    public bool Capturing => _capture != null;

    private GraphCapture? _capture;

    GraphCapture? ICudaStream.Capture => _capture;

    /// <summary>Starts recording the stream's work into a graph (see <see cref="CudaGraph"/>), allocating from
    /// the capture's private pool. Thread-local mode: other threads may keep using the driver meanwhile.</summary>
    internal void BeginCapture(GraphCapture capture)
    {
        MakeCurrent();
        if (Capturing)
            throw new InvalidOperationException("this context is already capturing a graph");
        Memory.BeginPool(capture.Pool);
        int status = Driver.cuStreamBeginCapture(
            _stream,
            1 /* CU_STREAM_CAPTURE_MODE_THREAD_LOCAL */
        );
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
        if (status != Driver.Success && graph != IntPtr.Zero)
            Driver.cuGraphDestroy(graph);
        Driver.Check(status);
        return graph;
    }
}
