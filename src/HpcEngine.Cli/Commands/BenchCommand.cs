using System.Diagnostics;
using System.Text.Json;
using CommandLine;
using HpcEngine.Autograd;
using HpcEngine.Backends.Cpu;

namespace HpcEngine.Cli.Commands;

[Verb("bench", HelpText = "Time a workload through the public API: gemm, softmax, layernorm or add.")]
public sealed class BenchOptions
{
    [Value(0, MetaName = "workload", Required = true, HelpText = "gemm | softmax | layernorm | add")]
    public string Workload { get; set; } = "";

    [Option("size", Default = 1024, HelpText = "gemm: N of an NxNxN product; others: rows and columns of an NxN float32 matrix.")]
    public int Size { get; set; }

    [Option("iters", Default = 20, HelpText = "Timed iterations (after 0.5 s of warm-up).")]
    public int Iters { get; set; }

    [Option("threads", HelpText = "Kernel threads (default: all cores).")]
    public int? Threads { get; set; }

    [Option("json", HelpText = "Write the result as JSON to this file.")]
    public string? Json { get; set; }
}

/// <summary>Micro-benchmarks of single ops through the public API. Timing: warm up for half a second (the first
/// fraction of a second runs slow on these machines), then time each iteration and report the median.</summary>
internal static class BenchCommand
{
    public static int Run(BenchOptions o)
    {
        if (o.Size <= 0) throw new ArgumentException($"--size must be positive, got {o.Size}");
        if (o.Iters <= 0) throw new ArgumentException($"--iters must be positive, got {o.Iters}");
        if (o.Threads is { } t) CpuThreads.Count = t;
        int n = o.Size;
        using var noGrad = GradMode.NoGrad();
        var gen = new Generator(1);
        using var a = Tensor.Randn([n, n], DType.Float32, gen);
        using var b = Tensor.Randn([n, n], DType.Float32, gen);
        using var w = Tensor.Randn([n], DType.Float32, gen);
        using var bias = Tensor.Randn([n], DType.Float32, gen);
        Func<Tensor> op = o.Workload switch
        {
            "gemm" => () => a.MatMul(b),
            "softmax" => () => F.Softmax(a, -1),
            "layernorm" => () => F.LayerNorm(a, [n], w, bias),
            "add" => () => a + b,
            _ => throw new ArgumentException($"unknown workload '{o.Workload}': use gemm, softmax, layernorm or add"),
        };
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 0.5) op().Dispose();
        var times = new double[o.Iters];
        for (int i = 0; i < o.Iters; i++)
        {
            var sw = Stopwatch.StartNew();
            op().Dispose();
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        double ms = times[times.Length / 2];
        var result = new Dictionary<string, object>
        {
            ["workload"] = o.Workload,
            ["size"] = n,
            ["threads"] = CpuThreads.Count,
            ["iters"] = o.Iters,
            ["ms"] = Math.Round(ms, 4),
            ["ms_min"] = Math.Round(times[0], 4),
        };
        if (o.Workload == "gemm")
        {
            double gflops = 2.0 * n * n * n / (ms * 1e6);
            result["gflops"] = Math.Round(gflops, 2);
            Console.WriteLine($"sgemm {n}x{n}x{n}: {ms:F3} ms (median of {o.Iters}), {gflops:F1} GFLOP/s, {CpuThreads.Count} threads");
        }
        else
        {
            // bytes moved: read the input(s) once, write the output once
            double bytes = (o.Workload == "add" ? 3.0 : 2.0) * n * n * sizeof(float);
            double gbps = bytes / (ms * 1e6);
            result["gb_per_s"] = Math.Round(gbps, 3);
            Console.WriteLine($"{o.Workload} {n}x{n} float32: {ms:F3} ms (median of {o.Iters}), {gbps:F2} GB/s, {CpuThreads.Count} threads");
        }
        if (o.Json != null) File.WriteAllText(o.Json, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }
}
