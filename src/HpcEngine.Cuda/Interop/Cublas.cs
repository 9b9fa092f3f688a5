using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HpcEngine.Cuda.Interop;

/// <summary>cuBLAS: handles, streams, math mode (TF32) and the mixed-precision GEMMs (fp32, TF32 and bf16 inputs with
/// fp32 accumulation). Column-major, as cuBLAS is: a row-major C = A·B is computed as Cᵀ = Bᵀ·Aᵀ.</summary>
internal static partial class Cublas
{
    private const string Lib = "cublas";
    public const int Success = 0;

    // cublasOperation_t, cudaDataType_t, cublasComputeType_t, cublasMath_t, cublasGemmAlgo_t.
    public const int OpN = 0,
        OpT = 1;
    public const int R32F = 0,
        R16BF = 14,
        R16F = 2;
    public const int Compute32F = 68,
        Compute32FFastTF32 = 77,
        Compute32FFast16BF = 75;
    public const int DefaultMath = 0,
        TF32TensorOpMath = 3;
    public const int GemmDefault = -1;

    [LibraryImport(Lib, EntryPoint = "cublasCreate_v2")]
    public static partial int cublasCreate(out IntPtr handle);

    [LibraryImport(Lib, EntryPoint = "cublasDestroy_v2")]
    public static partial int cublasDestroy(IntPtr handle);

    [LibraryImport(Lib, EntryPoint = "cublasSetStream_v2")]
    public static partial int cublasSetStream(IntPtr handle, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cublasGetVersion_v2")]
    public static partial int cublasGetVersion(IntPtr handle, out int version);

    [LibraryImport(Lib)]
    public static partial int cublasSetMathMode(IntPtr handle, int mode);

    [LibraryImport(Lib)]
    public static partial IntPtr cublasGetStatusString(int status);

    [LibraryImport(Lib)]
    public static unsafe partial int cublasGemmEx(
        IntPtr handle,
        int transA,
        int transB,
        int m,
        int n,
        int k,
        void* alpha,
        ulong a,
        int aType,
        int lda,
        ulong b,
        int bType,
        int ldb,
        void* beta,
        ulong c,
        int cType,
        int ldc,
        int computeType,
        int algo
    );

    [LibraryImport(Lib)]
    public static unsafe partial int cublasGemmStridedBatchedEx(
        IntPtr handle,
        int transA,
        int transB,
        int m,
        int n,
        int k,
        void* alpha,
        ulong a,
        int aType,
        int lda,
        long strideA,
        ulong b,
        int bType,
        int ldb,
        long strideB,
        void* beta,
        ulong c,
        int cType,
        int ldc,
        long strideC,
        int batchCount,
        int computeType,
        int algo
    );

    public static void Check(int code, [CallerArgumentExpression(nameof(code))] string call = "")
    {
        if (code != Success)
            throw new CublasException(
                code,
                Marshal.PtrToStringUTF8(cublasGetStatusString(code)) ?? $"cuBLAS status {code}",
                call
            );
    }
}
