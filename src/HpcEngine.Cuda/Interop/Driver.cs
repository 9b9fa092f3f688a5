using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HpcEngine.Cuda.Interop;

/// <summary>The CUDA driver API (libcuda.so.1): devices, primary contexts, memory, streams, events, modules, launches
/// and stream capture into graphs. The _v2 entry points are the ones current drivers export under the plain names'
/// ABI. Every call goes through <see cref="Check"/>.</summary>
internal static unsafe partial class Driver
{
    private const string Lib = "cuda";
    public const int Success = 0,
        ErrorNoDevice = 100,
        ErrorNotReady = 600;

    // Device attributes (CUdevice_attribute).
    public const int AttrMultiprocessorCount = 16,
        AttrComputeCapabilityMajor = 75,
        AttrComputeCapabilityMinor = 76;

    [LibraryImport(Lib)]
    public static partial int cuInit(uint flags);

    [LibraryImport(Lib)]
    public static partial int cuDriverGetVersion(out int version);

    [LibraryImport(Lib)]
    public static partial int cuDeviceGetCount(out int count);

    [LibraryImport(Lib)]
    public static partial int cuDeviceGet(out int device, int ordinal);

    [LibraryImport(Lib)]
    public static partial int cuDeviceGetName(byte* name, int length, int device);

    [LibraryImport(Lib)]
    public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);

    [LibraryImport(Lib, EntryPoint = "cuDeviceTotalMem_v2")]
    public static partial int cuDeviceTotalMem(out nuint bytes, int device);

    [LibraryImport(Lib)]
    public static partial int cuDevicePrimaryCtxRetain(out IntPtr context, int device);

    [LibraryImport(Lib, EntryPoint = "cuDevicePrimaryCtxRelease_v2")]
    public static partial int cuDevicePrimaryCtxRelease(int device);

    [LibraryImport(Lib)]
    public static partial int cuCtxSetCurrent(IntPtr context);

    [LibraryImport(Lib)]
    public static partial int cuCtxSynchronize();

    [LibraryImport(Lib, EntryPoint = "cuMemGetInfo_v2")]
    public static partial int cuMemGetInfo(out nuint free, out nuint total);

    [LibraryImport(Lib, EntryPoint = "cuMemAlloc_v2")]
    public static partial int cuMemAlloc(out ulong pointer, nuint bytes);

    [LibraryImport(Lib, EntryPoint = "cuMemFree_v2")]
    public static partial int cuMemFree(ulong pointer);

    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    public static partial int cuMemcpyHtoDAsync(ulong dst, void* src, nuint bytes, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    public static partial int cuMemcpyDtoHAsync(void* dst, ulong src, nuint bytes, IntPtr stream);

    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoDAsync_v2")]
    public static partial int cuMemcpyDtoDAsync(ulong dst, ulong src, nuint bytes, IntPtr stream);

    [LibraryImport(Lib)]
    public static partial int cuMemsetD8Async(ulong dst, byte value, nuint count, IntPtr stream);

    [LibraryImport(Lib)]
    public static partial int cuStreamCreate(out IntPtr stream, uint flags);

    [LibraryImport(Lib, EntryPoint = "cuStreamDestroy_v2")]
    public static partial int cuStreamDestroy(IntPtr stream);

    [LibraryImport(Lib)]
    public static partial int cuStreamSynchronize(IntPtr stream);

    [LibraryImport(Lib)]
    public static partial int cuEventCreate(out IntPtr evt, uint flags);

    [LibraryImport(Lib, EntryPoint = "cuEventDestroy_v2")]
    public static partial int cuEventDestroy(IntPtr evt);

    [LibraryImport(Lib)]
    public static partial int cuEventRecord(IntPtr evt, IntPtr stream);

    [LibraryImport(Lib)]
    public static partial int cuEventSynchronize(IntPtr evt);

    [LibraryImport(Lib)]
    public static partial int cuEventQuery(IntPtr evt);

    [LibraryImport(Lib)]
    public static partial int cuEventElapsedTime(out float milliseconds, IntPtr start, IntPtr end);

    [LibraryImport(Lib)]
    public static partial int cuModuleLoadData(out IntPtr module, void* image);

    [LibraryImport(Lib)]
    public static partial int cuModuleUnload(IntPtr module);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int cuModuleGetFunction(out IntPtr function, IntPtr module, string name);

    [LibraryImport(Lib)]
    public static partial int cuLaunchKernel(
        IntPtr function,
        uint gridX,
        uint gridY,
        uint gridZ,
        uint blockX,
        uint blockY,
        uint blockZ,
        uint sharedBytes,
        IntPtr stream,
        void** parameters,
        void** extra
    );

    // Stream capture → graph → instantiate → launch (capture mode 0: global).
    [LibraryImport(Lib, EntryPoint = "cuStreamBeginCapture_v2")]
    public static partial int cuStreamBeginCapture(IntPtr stream, int mode);

    [LibraryImport(Lib)]
    public static partial int cuStreamEndCapture(IntPtr stream, out IntPtr graph);

    [LibraryImport(Lib, EntryPoint = "cuGraphInstantiateWithFlags")]
    public static partial int cuGraphInstantiate(out IntPtr exec, IntPtr graph, ulong flags);

    [LibraryImport(Lib)]
    public static partial int cuGraphLaunch(IntPtr exec, IntPtr stream);

    [LibraryImport(Lib)]
    public static partial int cuGraphExecDestroy(IntPtr exec);

    [LibraryImport(Lib)]
    public static partial int cuGraphDestroy(IntPtr graph);

    [LibraryImport(Lib)]
    public static partial int cuGetErrorName(int error, out IntPtr name);

    [LibraryImport(Lib)]
    public static partial int cuGetErrorString(int error, out IntPtr description);

    public static void Check(int code, [CallerArgumentExpression(nameof(code))] string call = "")
    {
        if (code == Success)
            return;
        string name = cuGetErrorName(code, out var n) == Success ? Marshal.PtrToStringUTF8(n) ?? "?" : "?";
        string text = cuGetErrorString(code, out var d) == Success ? Marshal.PtrToStringUTF8(d) ?? "" : "";
        throw new CudaException(code, name, text, call);
    }
}
