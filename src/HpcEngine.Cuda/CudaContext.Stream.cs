using System.Runtime.InteropServices;
using HpcEngine.Cuda.Interop;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Cuda;

/// <summary>The <see cref="ICudaStream"/> a context is to the device backend: copies, memsets, cuBLAS products, graph
/// launches.</summary>
public sealed unsafe partial class CudaContext
{
    int ICudaStream.DeviceIndex => Device.Index;

    IntPtr ICudaStream.Function(string file, string name) => Function(file, name);

    void ICudaStream.CopyHostToDevice(ulong dst, ReadOnlySpan<byte> src)
    {
        MakeCurrent();
        fixed (byte* p = src)
            Driver.Check(Driver.cuMemcpyHtoDAsync(dst, p, (nuint)src.Length, _stream));
        Synchronize(); // the host span may go away as soon as we return
    }

    void ICudaStream.CopyDeviceToHost(Span<byte> dst, ulong src)
    {
        MakeCurrent();
        fixed (byte* p = dst)
            Driver.Check(Driver.cuMemcpyDtoHAsync(p, src, (nuint)dst.Length, _stream));
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

    void ICudaStream.GemmF32(
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
    ) => Cublas.GemmF32(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc, tf32);

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

    void ICudaStream.GemmStridedBatched(
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
    ) =>
        Cublas.GemmStridedBatched(
            transA,
            transB,
            m,
            n,
            k,
            a,
            lda,
            strideA,
            b,
            ldb,
            strideB,
            c,
            ldc,
            strideC,
            batch,
            bf16,
            tf32
        );

    void ICudaStream.GemmBf16(
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
    ) => Cublas.GemmBf16(transA, transB, m, n, k, a, lda, b, ldb, beta, c, ldc);
}
