using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;
using HpcEngine.Parallel;
using HpcEngine.Parallel.ModelParallel;

namespace HpcEngine.Cli.Commands;

/// <summary><c>hpcengine bench parallel</c>: training steps of <c>mlp-wide</c> or <c>gpt-mini</c> (SGD, global batch --batch-size) under
/// tensor, pipeline or data parallelism over all ranks of the launcher's world; reports samples/s, per-rank busy and
/// idle time, the pipeline bubble (measured and theoretical) and the bytes exchanged per step. Rank 0 prints and writes
/// the JSON. Without a launcher, <c>--ranks N</c> starts the same command under one.</summary>
internal static class ParallelBench
{
    public static int Run(BenchOptions o)
    {
        if (o.Mode is not ("tp" or "pp" or "dp")) throw new ArgumentException($"--mode must be tp, pp or dp, got '{o.Mode}'");
        if (o.Model is not ("mlp-wide" or "gpt-mini")) throw new ArgumentException($"bench parallel takes --model mlp-wide or gpt-mini, got '{o.Model}'");
        if (o.Model == "gpt-mini" && o.Mode == "pp") throw new ArgumentException("--mode pp splits a Sequential model by layers: use --model mlp-wide (gpt-mini is not a Sequential)");
        var schedule = o.Schedule switch
        {
            "gpipe" => PipelineSchedule.GPipe,
            "1f1b" => PipelineSchedule.OneFOneB,
            _ => throw new ArgumentException($"--schedule must be gpipe or 1f1b, got '{o.Schedule}'"),
        };
        if (!CliEnvironment.UnderLauncher)
        {
            if (o.Ranks is not int n || n < 1) throw new ArgumentException("bench parallel runs under hpcengine launch, or give --ranks N to start it under one");
            var args = Environment.GetCommandLineArgs().Skip(1).ToList();
            if (args.Count > 0 && args[0].EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) args.RemoveAt(0);
            return new HpcEngine.Distributed.Launch.Launcher(new HpcEngine.Distributed.Launch.LaunchSpec { Command = ["hpcengine", .. args], ProcsPerNode = n }, LaunchCommand.StartInfo).Run();
        }
        using var world = ProcessGroups.InitFromEnvironment();
        if (o.Ranks is int want && want != world.Size) throw new ArgumentException($"--ranks {want} but the launcher started {world.Size}");
        int batch = o.BatchSize, ranks = world.Size;
        if (o.Mode == "dp" && batch % ranks != 0) throw new ArgumentException($"--batch-size {batch} does not split over {ranks} data-parallel ranks");
        if (o.Mode == "pp" && batch % o.MicroBatches != 0) throw new ArgumentException($"--batch-size {batch} does not split into {o.MicroBatches} micro-batches");

        var gen = new Generator(1);
        bool gpt = o.Model == "gpt-mini";
        var cfg = GptMiniConfig.Default;
        using var x = gpt ? Tensor.Randint(0, cfg.Vocab, [batch, cfg.Context], generator: new Generator(5)) : Tensor.Randn([batch, 1, 28, 28], DType.Float32, new Generator(5));
        using var y = Tensor.Randint(0, gpt ? cfg.Vocab : 10, gpt ? [batch * cfg.Context] : [batch], generator: new Generator(6));
        Module? model = null;
        PipelineStage? stage = null;
        DistributedDataParallel? ddp = null;
        switch (o.Mode)
        {
            case "tp": model = gpt ? new ParallelGptMini(cfg, world, gen) : TensorParallel.MlpWide(world, gen); break;
            case "dp": model = Models.Create(o.Model, gen); ddp = new DistributedDataParallel(model, world); break;
            default: stage = new PipelineStage((Sequential)Models.Create("mlp-wide", gen), world); break;
        }
        // The loss of a slice of the batch: cross-entropy, vocabulary-parallel for the tensor-parallel gpt-mini.
        Tensor Loss(Tensor xs, int first, int count)
        {
            using var logits = model!.Forward(xs);
            if (!gpt) { using var ys = y.Narrow(0, first, count); return F.CrossEntropy(logits, ys); }
            using var yt = y.Narrow(0, first * cfg.Context, count * cfg.Context);
            using var flat = logits.Reshape(count * cfg.Context, logits.ShapeArray[2]);
            return o.Mode == "tp" ? VocabParallelCrossEntropy.Compute(flat, yt, world) : F.CrossEntropy(flat, yt);
        }
        using var sgd = new Sgd(stage?.Parameters() ?? model!.Parameters(), 0.01, 0.9);
        double busy = 0, bubble = 0, peak = 0;
        (double Busy, double Total) Step()
        {
            using var scope = new TensorScope();
            var sw = Stopwatch.StartNew();
            double stepBusy;
            if (stage != null)
            {
                var st = stage.Step(stage.IsFirst ? x : null, stage.IsLast ? y : null, o.MicroBatches, schedule);
                stepBusy = st.BusySeconds;
                peak = Math.Max(peak, st.PeakActivationBytes);
            }
            else
            {
                int per = o.Mode == "dp" ? batch / ranks : batch, first = o.Mode == "dp" ? world.Rank * per : 0;
                using var xs = x.Narrow(0, first, per);
                using var loss = Loss(xs, first, per);
                loss.Backward();
                stepBusy = sw.Elapsed.TotalSeconds; // tp: includes its in-layer allreduces (they cannot overlap here)
                ddp?.Synchronize();
            }
            sgd.Step();
            sgd.ZeroGrad();
            return (stepBusy, sw.Elapsed.TotalSeconds);
        }
        for (int i = 0; i < 3; i++) Step();
        world.Barrier().Wait();
        long bytes0 = world.BytesSent;
        var times = new List<double>();
        for (int i = 0; i < o.Iters; i++)
        {
            var (b, t) = Step();
            busy += b;
            bubble += t <= 0 ? 0 : 1 - b / t;
            times.Add(t);
        }
        world.Barrier().Wait();
        double[] mine = [busy, times.Sum(), (world.BytesSent - bytes0) / (double)o.Iters, bubble / o.Iters, peak];
        using var local = Tensor.FromArray(mine);
        using var all = Tensor.Zeros([ranks * mine.Length], DType.Float64);
        world.AllGather(all, local).Wait();
        var v = all.ToArray<double>();
        stage?.Dispose();
        ddp?.Dispose();
        model?.Dispose();
        if (world.Rank != 0) return 0;

        const int K = 5;
        double stepSeconds = Enumerable.Range(0, ranks).Max(r => v[r * K + 1]) / o.Iters;
        var perRank = Enumerable.Range(0, ranks).Select(r => new Dictionary<string, object>
        {
            ["rank"] = r, ["busy_s"] = v[r * K], ["idle_s"] = Math.Max(0, v[r * K + 1] - v[r * K]), ["bytes_per_step"] = v[r * K + 2],
            ["peak_activation_bytes"] = v[r * K + 4],
        }).ToArray();
        var result = new Dictionary<string, object?>
        {
            ["mode"] = o.Mode, ["ranks"] = ranks, ["model"] = o.Model, ["batch_size"] = batch, ["iters"] = o.Iters,
            ["schedule"] = o.Mode == "pp" ? o.Schedule : null, ["micro_batches"] = o.Mode == "pp" ? o.MicroBatches : null,
            ["step_ms"] = stepSeconds * 1e3, ["samples_per_s"] = batch / stepSeconds,
            ["bubble_fraction"] = o.Mode == "pp" ? Enumerable.Range(0, ranks).Average(r => v[r * K + 3]) : null,
            ["bubble_theoretical"] = o.Mode == "pp" ? PipelineStepStats.TheoreticalBubble(ranks, o.MicroBatches) : null,
            ["bytes_per_step"] = Enumerable.Range(0, ranks).Sum(r => v[r * K + 2]),
            ["per_rank"] = perRank,
        };
        Console.WriteLine($"{o.Mode} over {ranks} ranks, {o.Model}, batch {batch}{(o.Mode == "pp" ? $", {o.Schedule}, {o.MicroBatches} micro-batches" : "")}: " +
            $"{stepSeconds * 1e3:F1} ms/step, {batch / stepSeconds:F0} samples/s, {(double)result["bytes_per_step"]! / 1e6:F2} MB exchanged per step");
        if (o.Mode == "pp") Console.WriteLine($"bubble: measured {(double)result["bubble_fraction"]!:F3}, theoretical (p-1)/(m+p-1) = {(double)result["bubble_theoretical"]!:F3}");
        Console.WriteLine("| rank | busy s | idle s | MB sent/step | peak activation MB (pp) |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var r in perRank) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {r["rank"]} | {(double)r["busy_s"]:F3} | {(double)r["idle_s"]:F3} | {(double)r["bytes_per_step"] / 1e6:F2} | {(double)r["peak_activation_bytes"] / 1e6:F2} |"));
        if (o.Json != null) File.WriteAllText(o.Json, JsonSerializer.Serialize(result, Training.JsonNumbers.Options));
        return 0;
    }
}
