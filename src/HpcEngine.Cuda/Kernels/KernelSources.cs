using System.Reflection;

namespace HpcEngine.Cuda.Kernels;

/// <summary>The kernel sources of native/kernels and the device helpers of native/include, embedded in this assembly
/// (so a deployed engine needs no source tree to compile its kernels).</summary>
public static class KernelSources
{
    private static readonly Lazy<IReadOnlyDictionary<string, string>> Files = new(() =>
    {
        var asm = typeof(KernelSources).Assembly;
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in asm.GetManifestResourceNames())
        {
            if (
                !name.StartsWith("kernels/", StringComparison.Ordinal)
                && !name.StartsWith("include/", StringComparison.Ordinal)
            )
                continue;
            using var s = asm.GetManifestResourceStream(name)!;
            using var r = new StreamReader(s);
            files[name] = r.ReadToEnd();
        }
        return files;
    });

    /// <summary>Kernel file names ("elementwise.cu" ...).</summary>
    public static IReadOnlyList<string> Kernels =>
        Files
            .Value.Keys.Where(k => k.StartsWith("kernels/", StringComparison.Ordinal))
            .Select(k => k["kernels/".Length..])
            .Order(StringComparer.Ordinal)
            .ToArray();

    /// <summary>The source of one kernel file.</summary>
    public static string Kernel(string file) =>
        Files.Value.TryGetValue("kernels/" + file, out var s)
            ? s
            : throw new ArgumentException($"no kernel file '{file}' (have {string.Join(", ", Kernels)})", nameof(file));

    /// <summary>The headers kernels include, by include name ("hpc/common.cuh").</summary>
    public static IReadOnlyDictionary<string, string> Headers =>
        Files
            .Value.Where(kv => kv.Key.StartsWith("include/", StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key["include/".Length..], kv => kv.Value, StringComparer.Ordinal);
}
