using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HpcEngine.Cuda.Interop;

/// <summary>Finds the CUDA libraries: the directory in HPCENGINE_CUDA_PATH first, then the loader's search path, each
/// library under its versioned names newest first (a machine may have CUDA 11, 12 or 13 runtimes, and Debian ships
/// only versioned sonames). The bindings name the libraries by short keys ("cuda", "nvrtc", "cublas", "nccl"); the
/// resolver maps them. A library that is not found makes <see cref="Require"/> throw a
/// <see cref="CudaLibraryNotFoundException"/> listing every name tried — never a crash inside a P/Invoke.</summary>
public static class CudaLibraries
{
    private static readonly Dictionary<string, string[]> Names = new()
    {
        ["cuda"] = ["libcuda.so.1", "libcuda.so"],
        ["nvrtc"] = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"],
        ["cublas"] = ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"],
        ["cublasLt"] = ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"],
        ["nccl"] = ["libnccl.so.2", "libnccl.so"],
    };

    private static readonly Dictionary<string, (IntPtr Handle, string? Path, string[] Tried)> Loaded = new();
    private static readonly Lock Gate = new();

#pragma warning disable CA2255 // a module initializer is the one place that runs before any binding in this assembly
    [ModuleInitializer]
    internal static void Install() => NativeLibrary.SetDllImportResolver(typeof(CudaLibraries).Assembly, Resolve);
#pragma warning restore CA2255

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) =>
        Names.ContainsKey(name) ? Load(name).Handle : IntPtr.Zero;

    /// <summary>The file names tried for a library, in order: first in <paramref name="overrideDir"/> (default
    /// <see cref="CudaOptions.LibraryDir"/>, HPCENGINE_CUDA_PATH), then by name.</summary>
    public static IReadOnlyList<string> Candidates(string library, string? overrideDir = null)
    {
        if (!Names.TryGetValue(library, out var names))
            throw new ArgumentException($"unknown CUDA library key '{library}'", nameof(library));
        var dir = overrideDir ?? CudaOptions.Process.LibraryDir;
        return string.IsNullOrEmpty(dir) ? names : [.. names.Select(n => Path.Combine(dir, n)), .. names];
    }

    private static (IntPtr Handle, string? Path, string[] Tried) Load(string library)
    {
        lock (Gate)
        {
            if (Loaded.TryGetValue(library, out var known))
                return known;
            var tried = Candidates(library).ToArray();
            foreach (var candidate in tried)
                if (NativeLibrary.TryLoad(candidate, out var handle))
                    return Loaded[library] = (handle, candidate, tried);
            return Loaded[library] = (IntPtr.Zero, null, tried);
        }
    }

    /// <summary>Where a library was found, or null (see <see cref="Candidates"/> for what was tried).</summary>
    public static string? Find(string library) => Load(library).Path;

    /// <summary>Throws <see cref="CudaLibraryNotFoundException"/> unless <paramref name="library"/> can be
    /// loaded.</summary>
    public static void Require(string library)
    {
        var (handle, _, tried) = Load(library);
        if (handle == IntPtr.Zero)
            throw new CudaLibraryNotFoundException(library, tried);
    }
}
