namespace HpcEngine.Cuda;

/// <summary>Where the CUDA backend finds its libraries and kernels, as the environment may set it
/// (docs/ENVIRONMENT.md): this project's one reader of its <c>HPCENGINE_*</c> variables.</summary>
public sealed record CudaOptions
{
    /// <summary>HPCENGINE_CUDA_PATH: a directory tried first for libcuda, cuBLAS, NVRTC and NCCL.</summary>
    public string? LibraryDir { get; init; }

    /// <summary>HPCENGINE_KERNEL_DIR: a directory of prebuilt kernel images tried before the ones beside the
    /// binaries.</summary>
    public string? KernelDir { get; init; }

    /// <summary>HPCENGINE_KERNEL_CACHE: where NVRTC-compiled kernels are cached (default
    /// ~/.cache/hpcengine/kernels).</summary>
    public string KernelCache { get; init; } =
        Path.Combine(
            Environment.GetFolderPath(Environment.SpecialFolder.UserProfile),
            ".cache",
            "hpcengine",
            "kernels"
        );

    /// <summary>The options the variables of <paramref name="getenv"/> (default: this process's environment)
    /// set.</summary>
    public static CudaOptions FromEnvironment(Func<string, string?>? getenv = null)
    {
        getenv ??= Environment.GetEnvironmentVariable;
        static string? Set(string? v) => string.IsNullOrEmpty(v) ? null : v;
        var o = new CudaOptions
        {
            LibraryDir = Set(getenv("HPCENGINE_CUDA_PATH")),
            KernelDir = Set(getenv("HPCENGINE_KERNEL_DIR")),
        };
        return Set(getenv("HPCENGINE_KERNEL_CACHE")) is { } cache ? o with { KernelCache = cache } : o;
    }

    /// <summary>This process's, read once at first use.</summary>
    internal static CudaOptions Process => ProcessOptions.Value;

    private static readonly Lazy<CudaOptions> ProcessOptions = new(() => FromEnvironment());
}
