using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HpcEngine.Cuda.Interop;

/// <summary>NCCL (libnccl.so.2): communicators and the collectives on device buffers. Asynchronous errors are polled
/// with ncclCommGetAsyncError by the communicator's watchdog. Every call goes through <see cref="Check"/>.</summary>
internal static unsafe partial class Nccl
{
    private const string Lib = "nccl";
    public const int Success = 0,
        InProgress = 7;

    // ncclDataType_t and ncclRedOp_t.
    public const int Int32 = 2,
        Int64 = 4,
        Float16 = 6,
        Float32 = 7,
        Float64 = 8,
        BFloat16 = 9,
        UInt8 = 1;
    public const int Sum = 0,
        Prod = 1,
        Max = 2,
        Min = 3,
        Avg = 4;

    /// <summary>ncclUniqueId: 128 opaque bytes that rank 0 creates and every rank passes to ncclCommInitRank.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct UniqueId
    {
        public fixed byte Internal[128];
    }

    [LibraryImport(Lib)]
    public static partial int ncclGetVersion(out int version);

    [LibraryImport(Lib)]
    public static partial int ncclGetUniqueId(out UniqueId id);

    [LibraryImport(Lib)]
    public static partial int ncclCommInitRank(out IntPtr comm, int nranks, UniqueId id, int rank);

    [LibraryImport(Lib)]
    public static partial int ncclCommDestroy(IntPtr comm);

    [LibraryImport(Lib)]
    public static partial int ncclCommAbort(IntPtr comm);

    [LibraryImport(Lib)]
    public static partial int ncclCommGetAsyncError(IntPtr comm, out int asyncError);

    [LibraryImport(Lib)]
    public static partial IntPtr ncclGetErrorString(int result);

    [LibraryImport(Lib)]
    public static partial int ncclGroupStart();

    [LibraryImport(Lib)]
    public static partial int ncclGroupEnd();

    [LibraryImport(Lib)]
    public static partial int ncclAllReduce(
        ulong send,
        ulong recv,
        nuint count,
        int dtype,
        int op,
        IntPtr comm,
        IntPtr stream
    );

    [LibraryImport(Lib)]
    public static partial int ncclBroadcast(
        ulong send,
        ulong recv,
        nuint count,
        int dtype,
        int root,
        IntPtr comm,
        IntPtr stream
    );

    [LibraryImport(Lib)]
    public static partial int ncclReduce(
        ulong send,
        ulong recv,
        nuint count,
        int dtype,
        int op,
        int root,
        IntPtr comm,
        IntPtr stream
    );

    [LibraryImport(Lib)]
    public static partial int ncclAllGather(
        ulong send,
        ulong recv,
        nuint sendCount,
        int dtype,
        IntPtr comm,
        IntPtr stream
    );

    [LibraryImport(Lib)]
    public static partial int ncclReduceScatter(
        ulong send,
        ulong recv,
        nuint recvCount,
        int dtype,
        int op,
        IntPtr comm,
        IntPtr stream
    );

    [LibraryImport(Lib)]
    public static partial int ncclSend(ulong send, nuint count, int dtype, int peer, IntPtr comm, IntPtr stream);

    [LibraryImport(Lib)]
    public static partial int ncclRecv(ulong recv, nuint count, int dtype, int peer, IntPtr comm, IntPtr stream);

    public static string ErrorString(int code) =>
        Marshal.PtrToStringUTF8(ncclGetErrorString(code)) ?? $"NCCL error {code}";

    public static void Check(int code, [CallerArgumentExpression(nameof(code))] string call = "")
    {
        if (code != Success && code != InProgress)
            throw new NcclException(code, ErrorString(code), call);
    }
}
