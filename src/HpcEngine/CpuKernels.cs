using HpcEngine.Backends.Cpu;

namespace HpcEngine;

/// <summary>Which CPU kernels this machine runs, chosen at start-up from what the processor supports (what
/// <c>hpcengine info</c> prints beside any figure).</summary>
public static class CpuKernels
{
    /// <summary>The float32 GEMM micro-kernel: "AVX-512 6x32", "AVX2/FMA 6x16" or the portable fallback.</summary>
    public static string Gemm => Sgemm.KernelName;

    /// <summary>How conv2d runs on the CPU: the whole-batch kernel split by images (with the forward's window rows
    /// unfolded into the packed panel where the GEMM runs on its micro-kernel), and the lowering it falls back
    /// to.</summary>
    public static string Conv2d =>
        "images split over threads at >= 4 per thread"
        + (Sgemm.UsesMicroKernel ? ", forward rows unfolded into the packed panel" : "")
        + ", same-convolution unfolding by shifted planes; else im2col + GEMM per chunk";

    /// <summary>The 2×2 stride-2 max pool: "AVX2 branch-free" or "scalar".</summary>
    public static string MaxPool2x2 => System.Runtime.Intrinsics.X86.Avx2.IsSupported ? "AVX2 branch-free" : "scalar";
}
