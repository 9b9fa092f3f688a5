using System.Diagnostics;
using HpcEngine.Autograd;

namespace HpcEngine.Cli.Commands;

/// <summary><c>hpcengine bench conv</c>: each convolution layer of the <c>cnn</c> model (3×3, padding 1: 1→32 on 28×28
/// and 32→64 on 14×14) at the step's batch, forward, backward-data and backward-weight apart, in ms and GFLOP/s —
/// the per-layer figures issue #20 compares with PyTorch's same layers (bench/peers/torch_conv.py).</summary>
internal static class ConvBench
{
    private sealed record Layer(string Name, int In, int Out, int Size);

    private static readonly Layer[] Layers = [new("conv1", 1, 32, 28), new("conv2", 32, 64, 14)];

    public static int Run(BenchOptions o)
    {
        int n = o.BatchSize;
        var rows = new List<Dictionary<string, object>>();
        foreach (var layer in Layers)
        {
            var gen = new Generator(3);
            using var x = Tensor.Randn([n, layer.In, layer.Size, layer.Size], DType.Float32, gen);
            using var w = Tensor.Randn([layer.Out, layer.In, 3, 3], DType.Float32, gen, std: 0.1);
            using var gy = Tensor.Randn([n, layer.Out, layer.Size, layer.Size], DType.Float32, gen);
            // 2 flops per multiply-add; each of the three passes does the same count.
            double gflop = 2.0 * n * layer.Out * layer.Size * layer.Size * layer.In * 9 / 1e9;
            double forward = Median(
                () =>
                {
                    using (GradMode.NoGrad())
                        F.Conv2d(x, w, padding: 1).Dispose();
                },
                o.Iters
            );
            double data = Backward(x, w, gy, inputGrad: true, o.Iters);
            double weight = Backward(x, w, gy, inputGrad: false, o.Iters);
            foreach (
                var (pass, ms) in new[] { ("forward", forward), ("backward_data", data), ("backward_weight", weight) }
            )
            {
                Console.WriteLine(
                    $"{layer.Name} {layer.In}->{layer.Out} {layer.Size}x{layer.Size} b{n} {pass, -15} {ms, 8:F3} ms "
                        + $"{gflop / (ms / 1e3), 8:F1} GFLOP/s"
                );
                rows.Add(
                    new()
                    {
                        ["layer"] = layer.Name,
                        ["pass"] = pass,
                        ["batch"] = n,
                        ["ms"] = Math.Round(ms, 4),
                        ["gflops"] = Math.Round(gflop / (ms / 1e3), 2),
                    }
                );
            }
        }
        Console.WriteLine($"{KernelThreads.Count} threads; gemm kernel {CpuKernels.Gemm}");
        BenchCommand.WriteJson(
            o.Json,
            new Dictionary<string, object> { ["threads"] = KernelThreads.Count, ["layers"] = rows }
        );
        return 0;
    }

    /// <summary>The backward pass alone (the forward is untimed) with only the input's or only the weight's gradient
    /// asked for.</summary>
    private static double Backward(Tensor x, Tensor w, Tensor gy, bool inputGrad, int iters)
    {
        using var xg = x.Detach();
        using var wg = w.Detach();
        (inputGrad ? xg : wg).RequiresGrad_();
        var times = new List<double>();
        var warm = Stopwatch.StartNew();
        for (int i = 0; warm.Elapsed.TotalSeconds < 0.5 || times.Count < iters; i++)
        {
            using var scope = new TensorScope();
            var y = F.Conv2d(xg, wg, padding: 1);
            var sw = Stopwatch.StartNew();
            y.Backward(gy);
            double ms = sw.Elapsed.TotalMilliseconds;
            xg.Grad = null;
            wg.Grad = null;
            if (warm.Elapsed.TotalSeconds >= 0.5)
                times.Add(ms);
        }
        times.Sort();
        return times[times.Count / 2];
    }

    private static double Median(Action op, int iters)
    {
        var times = BenchCommand.Time(op, iters);
        return times[times.Length / 2];
    }
}
