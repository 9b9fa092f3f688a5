namespace HpcEngine.Cuda;

/// <summary>What the device backend needs from a GPU: its memory, host transfers, kernel launches and GEMMs, all in
/// order on one stream. <see cref="CudaContext"/> is the real one; the launch-signature tests substitute a recorder
/// (nothing runs), so every kernel the backend launches is checked against its compiled parameter list without a
/// GPU.</summary>
internal interface ICudaStream
{
    int DeviceIndex { get; }

    Memory.CachingAllocator Memory { get; }

    /// <summary>The stream handle (the allocator's stream key).</summary>
    IntPtr Stream { get; }

    /// <summary>The capture in progress (the stream records a graph instead of running), or null.</summary>
    GraphCapture? Capture { get; }

    bool Capturing => Capture != null;

    /// <summary>The entry point <paramref name="name"/> of kernel file <paramref name="file"/> (loaded once).</summary>
    IntPtr Function(string file, string name);

    /// <summary>Enqueues a kernel with arguments passed by value (device pointers as ulong, scalars, blittable
    /// structs laid out as the kernel's).</summary>
    void Launch(IntPtr function, uint grid, uint block, uint sharedBytes, params object[] args);

    /// <summary>Copies host bytes to device address <paramref name="dst"/> and waits (the span may go away
    /// after).</summary>
    void CopyHostToDevice(ulong dst, ReadOnlySpan<byte> src);

    /// <summary>Copies device bytes at <paramref name="src"/> into host memory and waits.</summary>
    void CopyDeviceToHost(Span<byte> dst, ulong src);

    void CopyDeviceToDevice(ulong dst, ulong src, long bytes);

    void Memset(ulong dst, long bytes);

    /// <summary>Column-major C = op(A)·op(B) + beta·C, fp32 (TF32 tensor cores when <paramref name="tf32"/>).</summary>
    void GemmF32(
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
    );

    /// <summary><paramref name="batch"/> column-major GEMMs, operand i at a + i·strideA (elements) and so on; bf16
    /// operands when <paramref name="bf16"/>, else fp32 (TF32 when <paramref name="tf32"/>); fp32 C.</summary>
    void GemmStridedBatched(
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
    );

    /// <summary>As <see cref="GemmF32"/> with bf16 operands, fp32 accumulation and output.</summary>
    void GemmBf16(
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
    );

    /// <summary>Waits for the stream (refused during a capture).</summary>
    void Synchronize();

    /// <summary>Starts recording the stream's work into a graph, allocating from the capture's pool.</summary>
    void BeginCapture(GraphCapture capture);

    /// <summary>Stops recording: the graph, or a throw when the capture was invalidated.</summary>
    IntPtr EndCapture();

    /// <summary>An executable graph from a captured one.</summary>
    IntPtr InstantiateGraph(IntPtr graph);

    void DestroyGraph(IntPtr graph);

    /// <summary>Enqueues an executable graph on the stream.</summary>
    void LaunchGraph(IntPtr exec);

    void DestroyGraphExec(IntPtr exec);
}
