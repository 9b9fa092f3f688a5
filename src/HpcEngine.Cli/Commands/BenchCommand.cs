using System.Diagnostics;
using System.Text.Json;
using CommandLine;
using HpcEngine.Autograd;
using HpcEngine.Backends.Cpu;

namespace HpcEngine.Cli.Commands;

[Verb(
    "bench",
    HelpText = "Time a workload: gemm, softmax, layernorm, add, step (one training step), collectives (under hpcengine launch), strategies (the sync/async strategy matrix), parallel (tp/pp/dp steps), gpu, loader (batches per second from memory and from shards), or serve (load on an inference server)."
)]
public sealed class BenchOptions
{
    [Value(
        0,
        MetaName = "workload",
        Required = true,
        HelpText = "gemm | softmax | layernorm | add | step | collectives | strategies | parallel | gpu | loader | serve"
    )]
    public string Workload { get; set; } = "";

    [Option(
        "size",
        Default = 1024,
        HelpText = "gemm: N of an NxNxN product; others: rows and columns of an NxN float32 matrix."
    )]
    public int Size { get; set; }

    [Option("iters", Default = 20, HelpText = "Timed iterations (after 0.5 s of warm-up).")]
    public int Iters { get; set; }

    [Option("threads", HelpText = "Kernel threads (default: all cores).")]
    public int? Threads { get; set; }

    [Option("model", HelpText = "step and strategies: mlp (default) | mlp-wide | cnn; parallel: mlp-wide (default)")]
    public string? Model { get; set; }

    [Option("batch-size", Default = 128, HelpText = "step: samples per step.")]
    public int BatchSize { get; set; }

    [Option("optimizer", Default = "sgd", HelpText = "step: sgd (momentum 0.9) | adam | adamw")]
    public string Optimizer { get; set; } = "sgd";

    [Option(
        "profile",
        Default = false,
        HelpText = "step: per-op time of the step, forward and backward apart (a table, and in --json)."
    )]
    public bool Profile { get; set; }

    [Option(
        "op",
        Default = "allreduce",
        HelpText = "collectives: allreduce | broadcast | reduce | allgather | reducescatter | alltoall | sendrecv"
    )]
    public string Op { get; set; } = "allreduce";

    [Option(
        "transport",
        HelpText = "collectives: auto (shared memory inside a host, TCP between hosts) | tcp | shm; default HPCENGINE_TRANSPORT, else auto."
    )]
    public string? Transport { get; set; }

    [Option("min-bytes", Default = 1024L, HelpText = "collectives: smallest message.")]
    public long MinBytes { get; set; }

    [Option("max-bytes", Default = 64L << 20, HelpText = "collectives: largest message.")]
    public long MaxBytes { get; set; }

    [Option("factor", Default = 2, HelpText = "collectives: size multiplier between steps.")]
    public int Factor { get; set; }

    [Option("warmup", Default = 3, HelpText = "collectives: untimed iterations per size.")]
    public int Warmup { get; set; }

    [Option("check", Default = false, HelpText = "collectives: verify results against the closed form (#wrong).")]
    public bool Check { get; set; }

    [Option("json", HelpText = "Write the result as JSON to this file.")]
    public string? Json { get; set; }

    [Option("workers", Default = "4", HelpText = "strategies: worker processes per run; several counts as 2,4.")]
    public string Workers { get; set; } = "4";

    [Option(
        "strategies",
        Default = "sync,zero1,ssp:2,ssp:inf,localsgd:8,diloco:32",
        HelpText = "strategies: the strategies to compare."
    )]
    public string Strategies { get; set; } = "";

    [Option(
        "compress",
        Default = "none",
        HelpText = "strategies: codecs to combine with each strategy (none, fp16, topk:0.01, powersgd:2 ...)."
    )]
    public string Compress { get; set; } = "none";

    [Option("epochs", Default = 3, HelpText = "strategies: epochs per run.")]
    public int Epochs { get; set; }

    [Option(
        "data",
        HelpText = "strategies: Fashion-MNIST directory (else HPCENGINE_DATA, Debian's package, then the embedded subset)."
    )]
    public string? Data { get; set; }

    [Option("url", HelpText = "serve: the inference server, e.g. http://127.0.0.1:8000.")]
    public string? Url { get; set; }

    [Option("concurrency", Default = 32, HelpText = "serve: concurrent clients.")]
    public int Concurrency { get; set; }

    [Option("requests", Default = 10000, HelpText = "serve: timed requests in total.")]
    public int Requests { get; set; }

    [Option(
        "warmup-seconds",
        HelpText = "serve: untimed load first, until the server is in its steady state (its JIT's second tier, connections); default 5. collectives: the first size's op runs this long untimed first (its JIT's second tier); default 0."
    )]
    public double? WarmupSeconds { get; set; }

    [Option(
        "tensor-format",
        Default = "binary",
        HelpText = "serve: binary (the binary tensor data extension, as Triton's perf_analyzer sends by default) or json."
    )]
    public string TensorFormat { get; set; } = "binary";

    [Option("token", HelpText = "serve: the server's bearer token.")]
    public string? Token { get; set; }

    [Option("dataset", HelpText = "loader: a prepared dataset (hpcengine data prepare) to stream from its shards.")]
    public string? Dataset { get; set; }

    [Option("target-accuracy", Default = 0.85, HelpText = "strategies: test accuracy that defines time to target.")]
    public double TargetAccuracy { get; set; }

    [Option(
        "bandwidth",
        HelpText = "strategies: emulated link bandwidth, e.g. 1gbit or 100mbit (default: loopback as is)."
    )]
    public string? Bandwidth { get; set; }

    [Option("latency", HelpText = "strategies: emulated one-way latency per message, e.g. 2ms.")]
    public string? Latency { get; set; }

    [Option("straggler", HelpText = "strategies: RANK:FACTOR, e.g. 1:1.5 makes rank 1 1.5x slower.")]
    public string? Straggler { get; set; }

    [Option(
        "fault-plan",
        HelpText = "strategies: run every combination elastic, without and with these faults (train's --fault-plan "
            + "grammar), and report goodput, recovery per event, samples lost and accuracy against the fault-free twin."
    )]
    public string? FaultPlan { get; set; }

    [Option(
        "max-restarts",
        Default = 0,
        HelpText = "strategies: with --fault-plan, replacements the launcher starts for failed workers (they join live)."
    )]
    public int MaxRestarts { get; set; }

    [Option(
        "price-per-hour",
        Default = 3.06,
        HelpText = "strategies: price of one worker machine per hour, for the cost estimate."
    )]
    public double PricePerHour { get; set; }

    [Option(
        "currency",
        Default = "USD",
        HelpText = "strategies: the currency of --price-per-hour (named beside every cost)."
    )]
    public string Currency { get; set; } = "USD";

    [Option("eval-every", Default = 40, HelpText = "strategies: evaluate every N steps (curve resolution).")]
    public int EvalEvery { get; set; }

    [Option("seed", Default = 0UL, HelpText = "strategies: seed of every run.")]
    public ulong Seed { get; set; }

    [Option("mode", Default = "tp", HelpText = "parallel: tp (tensor parallel) | pp (pipeline) | dp (data parallel).")]
    public string Mode { get; set; } = "tp";

    [Option(
        "ranks",
        HelpText = "parallel: ranks; without a launcher the command starts itself under one with this many."
    )]
    public int? Ranks { get; set; }

    [Option("schedule", Default = "1f1b", HelpText = "parallel --mode pp: gpipe | 1f1b.")]
    public string Schedule { get; set; } = "1f1b";

    [Option("micro-batches", Default = 8, HelpText = "parallel --mode pp: micro-batches per step.")]
    public int MicroBatches { get; set; }

    [Option("peer", HelpText = "gpu: bench/peers/torch_gpu.py's JSON from the same machine, to print ours / theirs.")]
    public string? Peer { get; set; }

    [Option(
        "render",
        Default = false,
        HelpText = "strategies: only redraw results.csv, the plots and report.md from DIR/results.json."
    )]
    public bool Render { get; set; }

    [Option(
        "out",
        HelpText = "strategies: output directory (results.json, results.csv, plots, report.md, per-run logs and traces)."
    )]
    public string? Out { get; set; }
}

/// <summary>Micro-benchmarks of single ops through the public API. Timing: warm up for half a second (the first
/// fraction of a second runs slow on these machines), then time each iteration and report the median.</summary>
internal static class BenchCommand
{
    public static int Run(BenchOptions o)
    {
        if (o.Size <= 0)
            throw new ArgumentException($"--size must be positive, got {o.Size}");
        if (o.Iters <= 0)
            throw new ArgumentException($"--iters must be positive, got {o.Iters}");
        if (o.Threads is { } t)
            KernelThreads.Count = t;
        o.Model ??= o.Workload == "parallel" ? "mlp-wide" : "mlp";
        if (o.Workload == "step")
            return StepBench.Run(o);
        if (o.Workload == "conv")
            return ConvBench.Run(o);
        if (o.Workload == "collectives")
            return CollectivesBench.Run(o);
        if (o.Workload == "strategies")
            return StrategyBench.Run(o);
        if (o.Workload == "parallel")
            return ParallelBench.Run(o);
        if (o.Workload == "gpu")
            return GpuBench.Run(o);
        if (o.Workload == "loader")
            return LoaderBench.Run(o);
        if (o.Workload == "serve")
            return ServeBench.Run(o);
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
            _ => throw new ArgumentException(
                $"unknown workload '{o.Workload}': use gemm, softmax, layernorm, add, step, conv, collectives, strategies, "
                    + $"parallel or gpu"
            ),
        };
        var times = Time(() => op().Dispose(), o.Iters);
        double ms = times[times.Length / 2];
        var result = new Dictionary<string, object>
        {
            ["workload"] = o.Workload,
            ["size"] = n,
            ["threads"] = KernelThreads.Count,
            ["iters"] = o.Iters,
            ["ms"] = Math.Round(ms, 4),
            ["ms_min"] = Math.Round(times[0], 4),
        };
        if (o.Workload == "gemm")
        {
            double gflops = 2.0 * n * n * n / (ms * 1e6);
            result["gflops"] = Math.Round(gflops, 2);
            Console.WriteLine(
                $"sgemm {n}x{n}x{n}: {ms:F3} ms (median of {o.Iters}), {gflops:F1} GFLOP/s, {KernelThreads.Count} "
                    + $"threads"
            );
        }
        else
        {
            // bytes moved: read the input(s) once, write the output once
            double bytes = (o.Workload == "add" ? 3.0 : 2.0) * n * n * sizeof(float);
            double gbps = bytes / (ms * 1e6);
            result["gb_per_s"] = Math.Round(gbps, 3);
            Console.WriteLine(
                $"{o.Workload} {n}x{n} float32: {ms:F3} ms (median of {o.Iters}), {gbps:F2} GB/s, "
                    + $"{KernelThreads.Count} threads"
            );
        }
        WriteJson(o.Json, result);
        return 0;
    }

    /// <summary>Warms up for half a second, then times <paramref name="iters"/> calls; returns sorted
    /// milliseconds.</summary>
    internal static double[] Time(Action op, int iters)
    {
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 0.5)
            op();
        var times = new double[iters];
        for (int i = 0; i < iters; i++)
        {
            var sw = Stopwatch.StartNew();
            op();
            times[i] = sw.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        return times;
    }

    internal static void WriteJson(string? path, object result)
    {
        if (path != null)
            File.WriteAllText(
                path,
                JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true })
            );
    }
}

/// <summary>One full training step — forward, cross-entropy, backward, optimizer update, zero grad — on a fixed
/// synthetic batch, inside a TensorScope as a training loop runs it.</summary>
internal static class StepBench
{
    public static int Run(BenchOptions o)
    {
        if (o.BatchSize <= 0)
            throw new ArgumentException($"--batch-size must be positive, got {o.BatchSize}");
        var config = HpcEngine.Training.TrainConfig.For(o.Model!) with
        {
            Optimizer = HpcEngine.Training.TrainConfig.ParseOptimizer(o.Optimizer),
            Lr = o.Optimizer == "sgd" ? 0.01 : 1e-3,
        };
        config.Validate();
        var gen = new Generator(1);
        using var model = HpcEngine.NN.Models.Create(o.Model!, gen);
        using var opt = HpcEngine.Training.Trainer.MakeOptimizer(config, model.Parameters());
        using var x = Tensor.Randn([o.BatchSize, 1, 28, 28], DType.Float32, gen);
        using var y = Tensor.Randint(0, 10, [o.BatchSize], generator: gen);
        void Step()
        {
            using var scope = new TensorScope();
            var loss = F.CrossEntropy(model.Forward(x), y);
            loss.Backward();
            opt.Step();
            opt.ZeroGrad();
        }
        if (o.Profile)
            return StepProfile.Run(o, model, opt, x, y);
        var times = BenchCommand.Time(Step, o.Iters);
        double ms = times[times.Length / 2];
        Console.WriteLine(
            $"train step {o.Model} batch {o.BatchSize} {o.Optimizer}: {ms:F3} ms (median of {o.Iters}, min "
                + $"{times[0]:F3}), {o.BatchSize / ms * 1000:F0} samples/s, {KernelThreads.Count} threads"
        );
        BenchCommand.WriteJson(
            o.Json,
            Described(
                o,
                ms,
                new()
                {
                    ["ms_min"] = Math.Round(times[0], 4),
                    ["samples_per_s"] = Math.Round(o.BatchSize / ms * 1000, 1),
                }
            )
        );
        return 0;
    }

    /// <summary>A step result as JSON fields: what was measured, its time per step, then <paramref name="more"/>.</summary>
    internal static Dictionary<string, object> Described(
        BenchOptions o,
        double msPerStep,
        Dictionary<string, object> more
    ) =>
        new Dictionary<string, object>
        {
            ["model"] = o.Model!,
            ["batch_size"] = o.BatchSize,
            ["optimizer"] = o.Optimizer,
            ["threads"] = KernelThreads.Count,
            ["iters"] = o.Iters,
            ["ms_per_step"] = Math.Round(msPerStep, 4),
        }
            .Concat(more)
            .ToDictionary();
}
