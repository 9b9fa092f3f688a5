using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HpcEngine.Cuda.Interop;

/// <summary>NVRTC, the run-time CUDA C++ compiler: the calls the kernel loader needs. Every call goes through
/// <see cref="Check"/>, which throws an <see cref="NvrtcException"/> with NVRTC's own message and the call.</summary>
internal static unsafe partial class Nvrtc
{
    private const string Lib = "nvrtc";
    public const int Success = 0,
        CompilationError = 6;

    [LibraryImport(Lib)]
    public static partial int nvrtcVersion(out int major, out int minor);

    [LibraryImport(Lib)]
    public static partial IntPtr nvrtcGetErrorString(int result);

    [LibraryImport(Lib)]
    public static partial int nvrtcCreateProgram(
        out IntPtr program,
        byte* source,
        byte* name,
        int headerCount,
        byte** headers,
        byte** includeNames
    );

    [LibraryImport(Lib)]
    public static partial int nvrtcCompileProgram(IntPtr program, int optionCount, byte** options);

    [LibraryImport(Lib)]
    public static partial int nvrtcGetProgramLogSize(IntPtr program, out nuint size);

    [LibraryImport(Lib)]
    public static partial int nvrtcGetProgramLog(IntPtr program, byte* log);

    [LibraryImport(Lib)]
    public static partial int nvrtcGetPTXSize(IntPtr program, out nuint size);

    [LibraryImport(Lib)]
    public static partial int nvrtcGetPTX(IntPtr program, byte* ptx);

    [LibraryImport(Lib)]
    public static partial int nvrtcGetCUBINSize(IntPtr program, out nuint size);

    [LibraryImport(Lib)]
    public static partial int nvrtcGetCUBIN(IntPtr program, byte* cubin);

    [LibraryImport(Lib)]
    public static partial int nvrtcDestroyProgram(ref IntPtr program);

    public static string ErrorString(int code) =>
        Marshal.PtrToStringUTF8(nvrtcGetErrorString(code)) ?? $"NVRTC error {code}";

    public static void Check(int code, [CallerArgumentExpression(nameof(code))] string call = "", string? log = null)
    {
        if (code != Success)
            throw new NvrtcException(code, ErrorString(code), call, log);
    }
}
