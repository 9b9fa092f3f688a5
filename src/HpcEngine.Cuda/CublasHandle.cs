using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda;

/// <summary>The precision of a cuBLAS GEMM: fp32 (IEEE), TF32 tensor cores on fp32 data, or bf16 inputs with fp32
/// accumulation.</summary>
public enum GemmPrecision
{
    /// <summary>Full float32 multiply-adds.</summary>
    Fp32,

    /// <summary>TF32 tensor-core multiplies (10-bit mantissa inputs) with float32 accumulation.</summary>
    Tf32,

    /// <summary>bfloat16 inputs with float32 accumulation.</summary>
    Bf16,
}

/// <summary>A cuBLAS handle bound to a context's stream: row-major GEMMs on device buffers.</summary>
public sealed unsafe class CublasHandle : IDisposable
{
    private readonly CudaContext _context;
    private readonly CublasLibraryHandle _owned;
    private IntPtr _handle;

    /// <summary>A cuBLAS handle on <paramref name="context"/>'s device, bound to its stream.</summary>
    public CublasHandle(CudaContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        CudaLibraries.Require("cublas");
        _context = context;
        context.MakeCurrent();
        _owned = CublasLibraryHandle.Create(context.ContextHandle);
        _handle = _owned.DangerousGetHandle();
        Cublas.Check(Cublas.cublasSetStream(_handle, context.Stream));
    }

    /// <summary>C[m×n] = A[m×k] · B[k×n], all row-major and contiguous (fp32 C; A and B fp32, or bf16 for <see
    /// cref="GemmPrecision.Bf16"/>). cuBLAS is column-major, so this computes Cᵀ = Bᵀ·Aᵀ, which needs no
    /// copies.</summary>
    public void Gemm(DeviceBuffer a, DeviceBuffer b, DeviceBuffer c, int m, int n, int k, GemmPrecision precision)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentNullException.ThrowIfNull(c);
        int inBytes = precision == GemmPrecision.Bf16 ? 2 : 4;
        if ((long)m * k * inBytes > a.Bytes || (long)k * n * inBytes > b.Bytes || (long)m * n * 4 > c.Bytes)
            throw new ArgumentException($"gemm {m}×{k} · {k}×{n}: a buffer is too small for the operands");
        _context.MakeCurrent();
        Cublas.Check(
            Cublas.cublasSetMathMode(
                _handle,
                precision == GemmPrecision.Tf32 ? Cublas.TF32TensorOpMath : Cublas.DefaultMath
            )
        );
        float alpha = 1,
            beta = 0;
        int inType = precision == GemmPrecision.Bf16 ? Cublas.R16BF : Cublas.R32F;
        int compute = precision == GemmPrecision.Tf32 ? Cublas.Compute32FFastTF32 : Cublas.Compute32F;
        Cublas.Check(
            Cublas.cublasGemmEx(
                _handle,
                Cublas.OpN,
                Cublas.OpN,
                n,
                m,
                k,
                &alpha,
                b.Pointer,
                inType,
                n,
                a.Pointer,
                inType,
                k,
                &beta,
                c.Pointer,
                Cublas.R32F,
                n,
                compute,
                Cublas.GemmDefault
            )
        );
    }

    /// <summary>Column-major cuBLAS GEMM on raw device pointers, fp32 in and out: C = op(A)·op(B) + beta·C with
    /// C m×n (ldc). The device backend maps row-major strided views onto it.</summary>
    internal void GemmF32(
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
    )
    {
        _context.MakeCurrent();
        Cublas.Check(Cublas.cublasSetMathMode(_handle, tf32 ? Cublas.TF32TensorOpMath : Cublas.DefaultMath));
        float alpha = 1;
        Cublas.Check(
            Cublas.cublasGemmEx(
                _handle,
                transA ? Cublas.OpT : Cublas.OpN,
                transB ? Cublas.OpT : Cublas.OpN,
                m,
                n,
                k,
                &alpha,
                a,
                Cublas.R32F,
                lda,
                b,
                Cublas.R32F,
                ldb,
                &beta,
                c,
                Cublas.R32F,
                ldc,
                tf32 ? Cublas.Compute32FFastTF32 : Cublas.Compute32F,
                Cublas.GemmDefault
            )
        );
    }

    /// <summary>As <see cref="GemmF32"/> with bf16 operands (fp32 accumulation and output) on the tensor
    /// cores.</summary>
    internal void GemmBf16(
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
    )
    {
        _context.MakeCurrent();
        Cublas.Check(Cublas.cublasSetMathMode(_handle, Cublas.DefaultMath));
        float alpha = 1;
        Cublas.Check(
            Cublas.cublasGemmEx(
                _handle,
                transA ? Cublas.OpT : Cublas.OpN,
                transB ? Cublas.OpT : Cublas.OpN,
                m,
                n,
                k,
                &alpha,
                a,
                Cublas.R16BF,
                lda,
                b,
                Cublas.R16BF,
                ldb,
                &beta,
                c,
                Cublas.R32F,
                ldc,
                Cublas.Compute32F,
                Cublas.GemmDefault
            )
        );
    }

    /// <summary>cublasGemmStridedBatchedEx: C_i = op(A_i)·op(B_i), column-major, fp32 out; bf16 or fp32 (TF32)
    /// operands.</summary>
    internal void GemmStridedBatched(
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
    )
    {
        _context.MakeCurrent();
        Cublas.Check(Cublas.cublasSetMathMode(_handle, tf32 && !bf16 ? Cublas.TF32TensorOpMath : Cublas.DefaultMath));
        float alpha = 1,
            beta = 0;
        int inType = bf16 ? Cublas.R16BF : Cublas.R32F;
        int compute = tf32 && !bf16 ? Cublas.Compute32FFastTF32 : Cublas.Compute32F;
        Cublas.Check(
            Cublas.cublasGemmStridedBatchedEx(
                _handle,
                transA ? Cublas.OpT : Cublas.OpN,
                transB ? Cublas.OpT : Cublas.OpN,
                m,
                n,
                k,
                &alpha,
                a,
                inType,
                lda,
                strideA,
                b,
                inType,
                ldb,
                strideB,
                &beta,
                c,
                Cublas.R32F,
                ldc,
                strideC,
                batch,
                compute,
                Cublas.GemmDefault
            )
        );
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_handle == IntPtr.Zero)
            return;
        _handle = IntPtr.Zero;
        _owned.Dispose();
    }
}
