using System.Runtime.InteropServices;
using HpcEngine.Cuda;
using HpcEngine.Cuda.Memory;

namespace HpcEngine.Tests.Cuda;

/// <summary>A GPU that runs nothing: it records every kernel launch (kernel file, name and the arguments' types) and
/// hands out fake device addresses, so the CUDA device backend can be driven through whole training steps on a machine
/// without a GPU and each launch checked against the kernel's compiled parameter list. Reads return zeros.</summary>
internal sealed class RecordingCudaStream : ICudaStream
{
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

    public List<(string File, string Name, Type[] Args)> Launches { get; } = new();

    public int Gemms { get; private set; }

    public int DeviceIndex => 0;

    public CachingAllocator Memory { get; } = new(new FakeMemory());

    public IntPtr Stream => 1;

    public bool Capturing => false;

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
        if (grid == 0 || block == 0 || block > 1024) throw new InvalidOperationException($"{name}: launch of {grid} blocks of {block} threads");
        lock (Launches) Launches.Add((file, name, args.Select(a => a.GetType()).ToArray()));
    }

    public void CopyHostToDevice(ulong dst, ReadOnlySpan<byte> src) { }

    public void CopyDeviceToHost(Span<byte> dst, ulong src) => dst.Clear();

    public void CopyDeviceToDevice(ulong dst, ulong src, long bytes) { }

    public void Memset(ulong dst, long bytes) { }

    public void GemmF32(bool transA, bool transB, int m, int n, int k, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int ldc, bool tf32) => Gemms++;

    public void GemmStridedBatched(bool transA, bool transB, int m, int n, int k, ulong a, int lda, long strideA, ulong b, int ldb, long strideB,
        ulong c, int ldc, long strideC, int batch, bool bf16, bool tf32) => Gemms++;

    public void GemmBf16(bool transA, bool transB, int m, int n, int k, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int ldc) => Gemms++;

    /// <summary>The PTX parameter kind an argument of this type must meet: "f32", "f64", "32", "64", or "b8[N]".</summary>
    public static string Kind(Type t) =>
        t == typeof(float) ? "f32" : t == typeof(double) ? "f64" :
        t == typeof(int) || t == typeof(uint) ? "32" : t == typeof(long) || t == typeof(ulong) ? "64" :
        t.IsValueType && !t.IsPrimitive ? $"b8[{Marshal.SizeOf(t)}]" : $"unsupported {t.Name}";
}
