using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda.Kernels;

/// <summary>What NVRTC produced for one source: PTX for a virtual architecture (compute_XX) or a CUBIN for a real one
/// (sm_XX), and the compiler's log (warnings).</summary>
public sealed record CompiledKernel(string Name, string Architecture, byte[] Image, bool IsCubin, string Log);

/// <summary>Compiles kernel sources with NVRTC. Headers are handed to NVRTC in memory (no include path on disk, no CUDA
/// toolkit headers), and results are cached on disk keyed by a hash of source, headers, options, architecture and
/// NVRTC version, so a process compiles each kernel file once per machine.</summary>
public static class NvrtcCompiler
{
    /// <summary>NVRTC's version (major, minor).</summary>
    public static (int Major, int Minor) Version
    {
        get
        {
            CudaLibraries.Require("nvrtc");
            Nvrtc.Check(Nvrtc.nvrtcVersion(out int major, out int minor));
            return (major, minor);
        }
    }

    /// <summary>Compiles <paramref name="source"/> for <paramref name="architecture"/> ("compute_80" gives PTX,
    /// "sm_90" a CUBIN). A compile error throws an <see cref="NvrtcException"/> whose message holds the log.</summary>
    public static unsafe CompiledKernel Compile(
        string name,
        string source,
        string architecture,
        IReadOnlyDictionary<string, string>? headers = null,
        IEnumerable<string>? extraOptions = null
    )
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(architecture);
        if (
            !architecture.StartsWith("compute_", StringComparison.Ordinal)
            && !architecture.StartsWith("sm_", StringComparison.Ordinal)
        )
            throw new ArgumentException(
                $"architecture must be compute_XX (PTX) or sm_XX (CUBIN), got '{architecture}'",
                nameof(architecture)
            );
        CudaLibraries.Require("nvrtc");
        headers ??= KernelSources.Headers;
        // NOTE: no --use_fast_math: parity with the CPU backend needs accurate expf/logf and IEEE division.
        var options = new List<string> { $"--gpu-architecture={architecture}", "--std=c++17", "-default-device" };
        if (extraOptions != null)
            options.AddRange(extraOptions);
        var allocations = new List<IntPtr>();
        byte* Utf8(string s)
        {
            var p = Marshal.StringToCoTaskMemUTF8(s);
            allocations.Add(p);
            return (byte*)p;
        }
        IntPtr program = IntPtr.Zero;
        try
        {
            var names = headers.Keys.ToArray();
            var headerPtrs = stackalloc byte*[Math.Max(1, names.Length)];
            var namePtrs = stackalloc byte*[Math.Max(1, names.Length)];
            for (int i = 0; i < names.Length; i++)
            {
                headerPtrs[i] = Utf8(headers[names[i]]);
                namePtrs[i] = Utf8(names[i]);
            }
            Nvrtc.Check(
                Nvrtc.nvrtcCreateProgram(out program, Utf8(source), Utf8(name), names.Length, headerPtrs, namePtrs)
            );
            var optionPtrs = stackalloc byte*[options.Count];
            for (int i = 0; i < options.Count; i++)
                optionPtrs[i] = Utf8(options[i]);
            int status = Nvrtc.nvrtcCompileProgram(program, options.Count, optionPtrs);
            string log = ReadLog(program);
            if (status != Nvrtc.Success)
                throw new NvrtcException(
                    status,
                    Nvrtc.ErrorString(status),
                    $"nvrtcCompileProgram({name}, {architecture})",
                    log
                );
            bool cubin = architecture.StartsWith("sm_", StringComparison.Ordinal);
            byte[] image;
            if (cubin)
            {
                Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(program, out nuint size));
                image = new byte[(int)size];
                fixed (byte* p = image)
                    Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(program, p));
            }
            else
            {
                Nvrtc.Check(Nvrtc.nvrtcGetPTXSize(program, out nuint size));
                image = new byte[(int)size];
                fixed (byte* p = image)
                    Nvrtc.Check(Nvrtc.nvrtcGetPTX(program, p));
            }
            return new CompiledKernel(name, architecture, image, cubin, log);
        }
        finally
        {
            if (program != IntPtr.Zero)
                Nvrtc.nvrtcDestroyProgram(ref program);
            foreach (var p in allocations)
                Marshal.FreeCoTaskMem(p);
        }
    }

    private static unsafe string ReadLog(IntPtr program)
    {
        if (Nvrtc.nvrtcGetProgramLogSize(program, out nuint size) != Nvrtc.Success || size <= 1)
            return "";
        var buffer = new byte[(int)size];
        fixed (byte* p = buffer)
            Nvrtc.nvrtcGetProgramLog(program, p);
        return Encoding.UTF8.GetString(buffer, 0, buffer.Length - 1);
    }

    /// <summary>Compiles one of the engine's kernel files, through the disk cache (<paramref name="cacheDir"/>, else
    /// <see cref="CudaOptions.KernelCache"/>: HPCENGINE_KERNEL_CACHE, default
    /// ~/.cache/hpcengine/kernels; a cache that cannot be written is skipped, not fatal).</summary>
    public static CompiledKernel CompileCached(string file, string architecture, string? cacheDir = null)
    {
        string source = KernelSources.Kernel(file);
        var headers = KernelSources.Headers;
        var (major, minor) = Version;
        var key = new StringBuilder()
            .Append(file)
            .Append('\0')
            .Append(architecture)
            .Append('\0')
            .Append(major)
            .Append('.')
            .Append(minor)
            .Append('\0')
            .Append(source);
        foreach (var (n, h) in headers.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            key.Append('\0').Append(n).Append('\0').Append(h);
        string hash = Convert
            .ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key.ToString())))[..24]
            .ToLowerInvariant();
        string dir = cacheDir ?? CudaOptions.Process.KernelCache;
        bool cubin = architecture.StartsWith("sm_", StringComparison.Ordinal);
        string path = Path.Combine(
            dir,
            $"{Path.GetFileNameWithoutExtension(file)}-{architecture}-{hash}.{(cubin ? "cubin" : "ptx")}"
        );
        if (File.Exists(path))
            return new CompiledKernel(file, architecture, File.ReadAllBytes(path), cubin, "");
        var compiled = Compile(file, source, architecture, headers);
        try
        {
            Directory.CreateDirectory(dir);
            string tmp = path + $".{Environment.ProcessId}.tmp";
            File.WriteAllBytes(tmp, compiled.Image);
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only home or full disk costs a recompile next time, nothing more.
        }
        return compiled;
    }
}
