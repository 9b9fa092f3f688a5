using HpcEngine.Backends.Cpu;

namespace HpcEngine;

/// <summary>Which CPU kernels this machine runs, chosen at start-up from what the processor supports (what
/// <c>hpcengine info</c> prints beside any figure).</summary>
public static class CpuKernels
{
    /// <summary>The float32 GEMM micro-kernel: "AVX-512 6x32", "AVX2/FMA 6x16" or the portable fallback.</summary>
    public static string Gemm => Sgemm.KernelName;
}
