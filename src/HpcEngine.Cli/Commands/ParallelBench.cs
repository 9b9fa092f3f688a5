using System.Globalization;
using System.Text.Json;
using HpcEngine.Benchmarks;
using HpcEngine.Distributed;
using HpcEngine.Parallel.ModelParallel;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

/// <summary><c>hpcengine bench parallel</c>: the library's <see cref="ParallelBenchmark"/> — training steps of
/// <c>mlp-wide</c> or <c>gpt-mini</c> (SGD, global batch --batch-size) under tensor, pipeline or data parallelism over
/// all ranks of the launcher's world; reports samples/s, per-rank busy and idle time, the pipeline bubble (measured and
/// theoretical) and the bytes exchanged per step. Rank 0 prints and writes the JSON. Without a launcher, <c>--ranks
/// N</c> starts the same command under one.</summary>
internal static class ParallelBench
{
    public static int Run(BenchOptions o)
    {
        if (o.Mode is not ("tp" or "pp" or "dp"))
            throw new ArgumentException($"--mode must be tp, pp or dp, got '{o.Mode}'");
        if (o.Model is not ("mlp-wide" or "gpt-mini"))
            throw new ArgumentException($"bench parallel takes --model mlp-wide or gpt-mini, got '{o.Model}'");
        if (o.Model == "gpt-mini" && o.Mode == "pp")
            throw new ArgumentException(
                "--mode pp splits a Sequential model by layers: use --model mlp-wide (gpt-mini is not a Sequential)"
            );
        var schedule = o.Schedule switch
        {
            "gpipe" => PipelineSchedule.GPipe,
            "1f1b" => PipelineSchedule.OneFOneB,
            _ => throw new ArgumentException($"--schedule must be gpipe or 1f1b, got '{o.Schedule}'"),
        };
        if (!CliEnvironment.UnderLauncher)
        {
            if (o.Ranks is not int n || n < 1)
                throw new ArgumentException(
                    "bench parallel runs under hpcengine launch, or give --ranks N to start it under one"
                );
            var args = Environment.GetCommandLineArgs().Skip(1).ToList();
            if (args.Count > 0 && args[0].EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
                args.RemoveAt(0);
            return new HpcEngine.Distributed.Launch.Launcher(
                new HpcEngine.Distributed.Launch.LaunchSpec { Command = ["hpcengine", .. args], ProcsPerNode = n },
                LaunchCommand.StartInfo
            ).Run();
        }
        using var world = ProcessGroups.InitFromEnvironment();
        if (o.Ranks is int want && want != world.Size)
            throw new ArgumentException($"--ranks {want} but the launcher started {world.Size}");
        var options = new ParallelBenchmarkOptions(
            o.Mode switch
            {
                "tp" => ParallelMode.Tensor,
                "pp" => ParallelMode.Pipeline,
                _ => ParallelMode.Data,
            },
            o.Model!,
            o.BatchSize,
            o.Iters,
            schedule,
            o.MicroBatches
        );
        ParallelBenchmarkResult r;
        try
        {
            r = ParallelBenchmark.Run(world, options);
        }
        catch (SettingsException e)
        {
            throw new ArgumentException(
                e.Describe(p =>
                    p == nameof(options.Mode) ? "--mode"
                    : p == nameof(options.MicroBatches) ? "--micro-batches"
                    : TrainFlags.Of(p)
                ),
                e
            );
        }
        if (world.Rank != 0)
            return 0;
        var result = new Dictionary<string, object?>
        {
            ["mode"] = o.Mode,
            ["ranks"] = r.Ranks,
            ["model"] = o.Model,
            ["batch_size"] = o.BatchSize,
            ["iters"] = o.Iters,
            ["schedule"] = o.Mode == "pp" ? o.Schedule : null,
            ["micro_batches"] = o.Mode == "pp" ? o.MicroBatches : null,
            ["step_ms"] = r.StepSeconds * 1e3,
            ["samples_per_s"] = r.SamplesPerSecond,
            ["bubble_fraction"] = r.BubbleFraction,
            ["bubble_theoretical"] = r.BubbleTheoretical,
            ["bytes_per_step"] = r.BytesPerStep,
            ["per_rank"] = r
                .PerRank.Select(p => new Dictionary<string, object>
                {
                    ["rank"] = p.Rank,
                    ["busy_s"] = p.BusySeconds,
                    ["idle_s"] = p.IdleSeconds,
                    ["bytes_per_step"] = p.BytesPerStep,
                    ["peak_activation_bytes"] = p.PeakActivationBytes,
                })
                .ToArray(),
        };
        Console.WriteLine(
            $"{o.Mode} over {r.Ranks} ranks, {o.Model}, batch {o.BatchSize}{(o.Mode == "pp" ? $", {o.Schedule}, {o.MicroBatches} micro-batches" : "")}: "
                + $"{r.StepSeconds * 1e3:F1} ms/step, {r.SamplesPerSecond:F0} samples/s, {r.BytesPerStep / 1e6:F2} MB exchanged per step"
        );
        if (r.BubbleFraction is double bubble)
            Console.WriteLine($"bubble: measured {bubble:F3}, theoretical (p-1)/(m+p-1) = {r.BubbleTheoretical:F3}");
        Console.WriteLine("| rank | busy s | idle s | MB sent/step | peak activation MB (pp) |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var p in r.PerRank)
            Console.WriteLine(
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"| {p.Rank} | {p.BusySeconds:F3} | {p.IdleSeconds:F3} | {p.BytesPerStep / 1e6:F2} | "
                        + $"{p.PeakActivationBytes / 1e6:F2} |"
                )
            );
        if (o.Json != null)
            File.WriteAllText(o.Json, Training.ResultJson.Serialize(result));
        return 0;
    }
}
