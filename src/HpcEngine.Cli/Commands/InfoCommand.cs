using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using CommandLine;
using HpcEngine.Backends.Cpu;

namespace HpcEngine.Cli.Commands;

[Verb("info", HelpText = "Print the engine version, the CPU's SIMD support, threads and devices.")]
public sealed class InfoOptions { }

internal static class InfoCommand
{
    public static int Run(InfoOptions _)
    {
        Console.WriteLine(
            $"HpcEngine {typeof(Tensor).Assembly.GetName().Version} on .NET {Environment.Version} "
                + $"({RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture})"
        );
        Console.WriteLine(
            $"cpu: {Environment.ProcessorCount} logical cores; kernel threads {KernelThreads.Count} "
                + $"(HPCENGINE_NUM_THREADS)"
        );
        Console.WriteLine(
            $"simd: AVX2 {Avx2.IsSupported}, FMA {Fma.IsSupported}, AVX-512F {Avx512F.IsSupported}, Vector512 "
                + $"accelerated {Vector512.IsHardwareAccelerated}"
        );
        Console.WriteLine($"sgemm micro-kernel: {CpuKernels.Gemm}");
        Console.WriteLine($"conv2d: {CpuKernels.Conv2d}");
        Console.WriteLine($"max pool 2x2: {CpuKernels.MaxPool2x2}");
        Console.WriteLine("devices: cpu");
        var cuda = HpcEngine.Cuda.CudaDevices.Probe();
        foreach (var line in cuda.ToString().Split('\n'))
            Console.WriteLine("cuda: " + line);
        if (cuda.Libraries["nvrtc"] != null)
        {
            var (major, minor) = HpcEngine.Cuda.Kernels.NvrtcCompiler.Version;
            Console.WriteLine(
                $"cuda: NVRTC {major}.{minor} can compile the engine's "
                    + $"{HpcEngine.Cuda.Kernels.KernelSources.Kernels.Count} kernel files"
            );
        }
        return 0;
    }
}
