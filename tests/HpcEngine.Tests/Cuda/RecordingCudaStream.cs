using System.Runtime.InteropServices;
using HpcEngine.Cuda;
using HpcEngine.Cuda.Memory;

namespace HpcEngine.Tests.Cuda;

/// <summary>A GPU that runs nothing: it records every kernel launch and cuBLAS call (kernel file, name, arguments)
/// and hands out fake device addresses, so the CUDA device backend can be driven through whole training steps on a
/// machine without a GPU — each launch checked against the kernel's compiled parameter list, and CUDA-graph capture
/// checked for what it records, which memory it uses and what it refuses. Reads return zeros.</summary>
internal sealed class RecordingCudaStream : ICudaStream
{
    /// <summary>One recorded call: a kernel (file and entry point) or a cuBLAS GEMM (file "").</summary>
    public sealed record Call(string File, string Name, object[] Args)
    {
        public Type[] ArgTypes => Args.Select(a => a.GetType()).ToArray();
    }

    private sealed class FakeMemory : IDeviceMemory
    {
        private ulong _next = 0x10000;

        public ulong Allocate(long bytes)
        {
            ulong p = _next;
            _next += (ulong)((bytes + 255) / 256 * 256);
            return p;
        }

        public void Free(ulong pointer) { }

        public Func<bool> RecordEvent(IntPtr stream) => () => true;
    }

    private readonly List<(string File, string Name)> _functions = new();
    private readonly Dictionary<IntPtr, List<Call>> _graphs = new();
    private List<Call>? _capture;
    private int _nextGraph = 1;

    /// <summary>What ran, in order (graph replays append their recorded calls).</summary>
    public List<Call> Launches { get; } = new();

    /// <summary>The calls of each executable graph.</summary>
    public IReadOnlyDictionary<IntPtr, List<Call>> Graphs => _graphs;

    public int Gemms => Launches.Count(c => c.Name == "gemm");

    public int Replays { get; private set; }

    public int DeviceIndex => 0;

    public CachingAllocator Memory { get; } = new(new FakeMemory());

    public IntPtr Stream => 1;

    public bool Capturing => _capture != null;

    public GraphCapture? Capture { get; private set; }

    private List<Call> Sink => _capture ?? Launches;

    public IntPtr Function(string file, string name)
    {
        lock (_functions)
        {
            int i = _functions.IndexOf((file, name));
            if (i < 0)
            {
                _functions.Add((file, name));
                i = _functions.Count - 1;
            }
            return i + 1;
        }
    }

    public void Launch(IntPtr function, uint grid, uint block, uint sharedBytes, params object[] args)
    {
        var (file, name) = _functions[(int)function - 1];
        if (grid == 0 || block == 0 || block > 1024)
            throw new InvalidOperationException($"{name}: launch of {grid} blocks of {block} threads");
        lock (Launches)
            Sink.Add(new Call(file, name, args));
    }

    public void CopyHostToDevice(ulong dst, ReadOnlySpan<byte> src) => NotCapturing();

    public void CopyDeviceToHost(Span<byte> dst, ulong src)
    {
        NotCapturing();
        dst.Clear();
    }

    public void CopyDeviceToDevice(ulong dst, ulong src, long bytes) =>
        Sink.Add(new Call("", "memcpy", [dst, src, bytes]));

    public void Memset(ulong dst, long bytes) => Sink.Add(new Call("", "memset", [dst, bytes]));

    public void GemmF32(
        bool transA,
        bool transB,
        int m,
        int n,
        int k,
        ulong a,
        int lda,
        ulong b,
        int ldb,
        float beta,
        ulong c,
        int ldc,
        bool tf32
    ) => Sink.Add(new Call("", "gemm", [a, b, c]));

    public void GemmStridedBatched(
        bool transA,
        bool transB,
        int m,
        int n,
        int k,
        ulong a,
        int lda,
        long strideA,
        ulong b,
        int ldb,
        long strideB,
        ulong c,
        int ldc,
        long strideC,
        int batch,
        bool bf16,
        bool tf32
    ) => Sink.Add(new Call("", "gemm", [a, b, c]));

    public void GemmBf16(
        bool transA,
        bool transB,
        int m,
        int n,
        int k,
        ulong a,
        int lda,
        ulong b,
        int ldb,
        float beta,
        ulong c,
        int ldc
    ) => Sink.Add(new Call("", "gemm", [a, b, c]));

    private void NotCapturing()
    {
        // What the driver does: a synchronising call during a capture fails.
        if (Capturing)
            throw new InvalidOperationException(
                "recording stream: a host transfer reached the stream during a capture"
            );
    }

    public void Synchronize()
    {
        if (Capturing)
            throw new InvalidOperationException("recording stream: synchronize during a capture");
    }

    public void BeginCapture(GraphCapture capture)
    {
        if (Capturing)
            throw new InvalidOperationException("already capturing");
        Memory.BeginPool(capture.Pool);
        _capture = new List<Call>();
        Capture = capture;
    }

    public IntPtr EndCapture()
    {
        var calls = _capture ?? throw new InvalidOperationException("not capturing");
        _capture = null;
        Capture = null;
        Memory.EndPool();
        IntPtr g = _nextGraph++;
        _graphs[g] = calls;
        return g;
    }

    public IntPtr InstantiateGraph(IntPtr graph)
    {
        IntPtr exec = _nextGraph++;
        _graphs[exec] = [.. _graphs[graph]];
        return exec;
    }

    public void DestroyGraph(IntPtr graph) => _graphs.Remove(graph);

    public void LaunchGraph(IntPtr exec)
    {
        Replays++;
        Launches.AddRange(_graphs[exec]);
    }

    public void DestroyGraphExec(IntPtr exec) => _graphs.Remove(exec);

    /// <summary>The PTX parameter kind an argument of this type must meet: "f32", "f64", "32", "64", or
    /// "b8[N]".</summary>
    public static string Kind(Type t) =>
        t == typeof(float) ? "f32"
        : t == typeof(double) ? "f64"
        : t == typeof(int) || t == typeof(uint) ? "32"
        : t == typeof(long) || t == typeof(ulong) ? "64"
        : t.IsValueType && !t.IsPrimitive ? $"b8[{Marshal.SizeOf(t)}]"
        : $"unsupported {t.Name}";
}
