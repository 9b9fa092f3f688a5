using BenchmarkDotNet.Running;

namespace HpcEngine.Bench;

/// <summary>Micro-benchmarks of the CPU kernels: <c>dotnet run -c Release --project bench/HpcEngine.Bench -- --filter
/// '*'</c>.</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
