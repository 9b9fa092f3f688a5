using System.Globalization;
using System.Text.Json;
using HpcEngine.Cuda;

namespace HpcEngine.Cli.Commands;

/// <summary><c>hpcengine bench gpu</c>: the CUDA issue's kernel workloads on cuda:0 — cuBLAS GEMM fp32 / TF32 / bf16 at
/// 4096³ and 8192³ (TFLOP/s), and the engine's softmax, layer norm and add kernels on a 16384×4096 fp32 matrix (GB/s,
/// bytes read + written once) — timed with CUDA events (median), and one mlp-wide Adam training step on cuda tensors.
/// With <c>--peer FILE</c> (bench/peers/torch_gpu.py's JSON from the same call) it prints ours / theirs. Without a GPU
/// it says why and exits 2.</summary>
internal static class GpuBench
{
    public static int Run(BenchOptions o)
    {
        var report = CudaDevices.Probe();
        if (!report.HasDevice)
            throw new InvalidOperationException($"bench gpu needs a CUDA device: {report.Problem}");
        using var cuda = CudaContext.Open(0);
        using var blas = new CublasHandle(cuda);
        var rows = new List<(string Workload, double Seconds, double Figure, string Unit)>();
        int iters = Math.Max(5, o.Iters);
        foreach (int n in new[] { 4096, 8192 })
        foreach (var precision in new[] { GemmPrecision.Fp32, GemmPrecision.Tf32, GemmPrecision.Bf16 })
        {
            int inBytes = precision == GemmPrecision.Bf16 ? 2 : 4;
            using var a = cuda.Allocate((long)n * n * inBytes);
            using var b = cuda.Allocate((long)n * n * inBytes);
            using var c = cuda.Allocate((long)n * n * 4);
            double ms = cuda.TimeMilliseconds(() => blas.Gemm(a, b, c, n, n, n, precision), Math.Max(5, iters / 4));
            rows.Add(
                (
                    $"gemm {precision.ToString().ToLowerInvariant()} {n}^3",
                    ms / 1e3,
                    2.0 * n * n * n / (ms / 1e3) / 1e12,
                    "TFLOP/s"
                )
            );
        }
        const int R = 16384,
            C = 4096;
        long bytes = 4L * R * C;
        using (var softmax = cuda.LoadKernels("softmax.cu"))
        using (var layernorm = cuda.LoadKernels("layernorm.cu"))
        using (var elementwise = cuda.LoadKernels("elementwise.cu"))
        using (var x = cuda.Allocate(bytes))
        using (var y = cuda.Allocate(bytes))
        using (var z = cuda.Allocate(bytes))
        using (var w = cuda.Allocate(4L * C))
        using (var bias = cuda.Allocate(4L * C))
        using (var mean = cuda.Allocate(4L * R))
        using (var rstd = cuda.Allocate(4L * R))
        {
            var f = softmax.Function("softmax_f32");
            double ms = cuda.TimeMilliseconds(
                () => cuda.Launch(f, R, 256, 0, x.Pointer, y.Pointer, (long)R, (long)C),
                iters
            );
            rows.Add(("softmax 16384x4096", ms / 1e3, 2.0 * bytes / (ms / 1e3) / 1e9, "GB/s"));
            var ln = layernorm.Function("layernorm_f32");
            ms = cuda.TimeMilliseconds(
                () =>
                    cuda.Launch(
                        ln,
                        R,
                        256,
                        0,
                        x.Pointer,
                        w.Pointer,
                        bias.Pointer,
                        y.Pointer,
                        mean.Pointer,
                        rstd.Pointer,
                        (long)R,
                        (long)C,
                        1e-5f
                    ),
                iters
            );
            rows.Add(("layernorm 16384x4096", ms / 1e3, 2.0 * bytes / (ms / 1e3) / 1e9, "GB/s"));
            var add = elementwise.Function("add_f32");
            uint grid = (uint)(cuda.Device.Multiprocessors * 8);
            ms = cuda.TimeMilliseconds(
                () => cuda.Launch(add, grid, 256, 0, x.Pointer, y.Pointer, z.Pointer, (long)R * C),
                iters
            );
            rows.Add(("add 16384x4096", ms / 1e3, 3.0 * bytes / (ms / 1e3) / 1e9, "GB/s"));
        }
        rows.AddRange(TrainingSteps(iters));
        Dictionary<string, double>? peer = null;
        if (o.Peer != null)
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(o.Peer));
            peer = doc
                .RootElement.GetProperty("rows")
                .EnumerateArray()
                .ToDictionary(r => r.GetProperty("workload").GetString()!, r => r.GetProperty("seconds").GetDouble());
        }
        Console.WriteLine($"cuda:0 {cuda.Device.Name}, compute {cuda.Device.ComputeMajor}.{cuda.Device.ComputeMinor}");
        Console.WriteLine("| workload | ours | unit | ours s | peer s | speed vs peer |");
        Console.WriteLine("|---|---|---|---|---|---|");
        foreach (var (name, secs, fig, unit) in rows)
        {
            // The graph-replayed step is compared with PyTorch's eager step (the peer has no graph row).
            string peerName = name.Replace(" (cuda graph)", "", StringComparison.Ordinal);
            double? theirs = peer != null && peer.TryGetValue(peerName, out var t) ? t : null;
            Console.WriteLine(
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"| {name} | {fig:F1} | {unit} | {secs:E3} | {(theirs is double th ? th.ToString("E3", CultureInfo.InvariantCulture) : "–")} | {(theirs is double r ? $"{r / secs:F2}x" : "–")} |"
                )
            );
        }
        if (o.Json != null)
            File.WriteAllText(
                o.Json,
                Training.ResultJson.Serialize(
                    new Dictionary<string, object>
                    {
                        ["device"] = cuda.Device.Name,
                        ["rows"] = rows.Select(r => new Dictionary<string, object>
                            {
                                ["workload"] = r.Workload,
                                ["seconds"] = r.Seconds,
                                ["figure"] = r.Figure,
                                ["unit"] = r.Unit,
                            })
                            .ToArray(),
                    }
                )
            );
        return 0;
    }

    /// <summary>One mlp-wide training step (784-1024-1024-10, batch 512, Adam) on cuda tensors through the device
    /// backend, as torch_gpu.py times PyTorch eager: wall time over the steps, synchronised at the end — run eagerly,
    /// then captured once in a CUDA graph and replayed (one launch per step instead of ~40).</summary>
    private static IEnumerable<(string, double, double, string)> TrainingSteps(int iters)
    {
        var cuda = CudaBackend.Register(0);
        var gpu = Device.Cuda(0);
        using var model = NN.Models.Create("mlp-wide", new Generator(0));
        model.To(gpu);
        using var opt = new Optim.Adam(model.Parameters(), 1e-3);
        using var x = Tensor.Randn([512, 1, 28, 28], DType.Float32, new Generator(1)).To(gpu);
        using var y = Tensor.Randint(0, 10, [512], DType.Int64, new Generator(2)).To(gpu);
        void Step()
        {
            using var scope = new TensorScope();
            opt.ZeroGrad();
            var loss = F.CrossEntropy(model.Call(x), y);
            loss.Backward();
            opt.Step();
        }
        double Time(Action step)
        {
            for (int i = 0; i < 5; i++)
                step();
            cuda.Synchronize();
            var sw = System.Diagnostics.Stopwatch.StartNew();
            for (int i = 0; i < iters; i++)
                step();
            cuda.Synchronize();
            return sw.Elapsed.TotalSeconds / iters;
        }
        double eager = Time(Step);
        yield return ("mlp-wide step b512 adam", eager, eager * 1e3, "ms");
        using var graph = CudaGraph.Capture(cuda, Step);
        double replayed = Time(graph.Replay);
        yield return ("mlp-wide step b512 adam (cuda graph)", replayed, replayed * 1e3, "ms");
    }
}
