using System.Security.Cryptography;
using System.Text;

namespace HpcEngine.Cuda.Kernels;

/// <summary>Ahead-of-time kernel images: the fatbins CMakeLists.txt builds with nvcc (sm_80, sm_90 and PTX), found in
/// HPCENGINE_KERNEL_DIR or a <c>kernels</c> folder beside the assembly. Each fatbin comes with a stamp
/// (<c>NAME.fatbin.sha256</c>, written by cmake/KernelStamp.cmake) hashing the source and headers it was built from; a
/// fatbin whose stamp does not match the sources embedded in this assembly is stale and ignored, so an old build can
/// never run instead of the current kernels.</summary>
public static class KernelImages
{
    /// <summary>The folders searched, in order.</summary>
    public static IReadOnlyList<string> SearchDirectories
    {
        get
        {
            var dirs = new List<string>();
            if (CudaOptions.Process.KernelDir is { } d)
                dirs.Add(d);
            dirs.Add(Path.Combine(AppContext.BaseDirectory, "kernels"));
            return dirs;
        }
    }

    /// <summary>The stamp of a kernel file as embedded: SHA-256 (lower-case hex) of its source followed, for each
    /// header in ordinal order of include name, by <c>"\n//-- NAME\n"</c> and the header's text.
    /// cmake/KernelStamp.cmake computes the same from the files on disk.</summary>
    public static string Stamp(string file) => Stamp(KernelSources.Kernel(file), KernelSources.Headers);

    internal static string Stamp(string source, IReadOnlyDictionary<string, string> headers)
    {
        var text = new StringBuilder(source);
        foreach (var (name, header) in headers.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            text.Append("\n//-- ").Append(name).Append('\n').Append(header);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()))).ToLowerInvariant();
    }

    /// <summary>The path of an up-to-date fatbin for <paramref name="file"/>, or null (with why in
    /// <paramref name="reason"/>) when there is none and NVRTC must compile it.</summary>
    public static string? FindFatbin(string file, out string reason) =>
        FindFatbin(file, Stamp(file), SearchDirectories, out reason);

    internal static string? FindFatbin(string file, string stamp, IEnumerable<string> directories, out string reason)
    {
        var notes = new List<string>();
        string name = Path.GetFileNameWithoutExtension(file) + ".fatbin";
        foreach (var dir in directories)
        {
            string path = Path.Combine(dir, name);
            if (!File.Exists(path))
                continue;
            string stampPath = path + ".sha256";
            if (!File.Exists(stampPath))
            {
                notes.Add($"{path} has no stamp ({Path.GetFileName(stampPath)})");
                continue;
            }
            if (!string.Equals(File.ReadAllText(stampPath).Trim(), stamp, StringComparison.OrdinalIgnoreCase))
            {
                notes.Add($"{path} is stale (built from other sources)");
                continue;
            }
            reason = $"ahead-of-time fatbin {path}";
            return path;
        }
        reason = notes.Count > 0 ? string.Join("; ", notes) : $"no {name} in {string.Join(", ", directories)}";
        return null;
    }
}
