using HpcEngine.Compression;
using HpcEngine.Data;
using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;
using HpcEngine.Parallel;
using HpcEngine.Training;

namespace HpcEngine.Benchmarks;

/// <summary>Runs each combination inside this process: one thread per rank, TCP process groups over loopback (with
/// the study's network emulation), <see cref="Trainer.Run"/> on every rank. For embedding tools and quick looks; the
/// ranks share this process's kernel threads (<see cref="Backends.Cpu.CpuThreads"/>), so throughput is not what
/// separate machines give — measure with <c>hpcengine bench strategies</c>, whose ranks are processes.</summary>
public sealed class InProcessStrategyRunner(Dataset train, Dataset test, string dataSource) : IStrategyRunner
{
    /// <summary>How long a run may take before it is recorded as failed.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromHours(1);

    /// <inheritdoc/>
    public StrategyRunResult Run(
        StrategyRunPlan plan,
        StrategyStudyConfig config,
        string runDir,
        Action<string> progress
    )
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(config);
        if (config.FaultPlan != null)
            return StrategyRunResult.Failed(
                plan,
                "fault plans kill and stop processes: run them with worker processes (hpcengine bench strategies)"
            );
        var trainConfig = TrainConfig.For(config.Model) with
        {
            Epochs = config.Epochs,
            BatchSize = config.BatchSize,
            Seed = config.Seed,
            EvalEverySteps = config.EvalEvery,
            Strategy = StrategySpec.Parse(plan.Strategy),
            Compress = plan.Codec == "none" ? null : CodecSpec.Parse(plan.Codec),
            Straggler = config.Straggler,
            TraceDir = runDir,
            AllowDivergence = true, // divergence is an outcome the study records
        };
        var emulation = StrategyStudy.NetworkEmulationOf(config);
        var tcp = new TcpOptions
        {
            Timeout = TimeSpan.FromMinutes(5),
            Emulation = emulation == null ? null : NetworkEmulation.Parse(emulation),
        };
        int size = plan.Workers + StrategyStudy.DedicatedServers(plan.Strategy);
        var wall = System.Diagnostics.Stopwatch.StartNew();
        TrainResult? lead = null;
        var errors = new Exception?[size];
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        var threads = Enumerable
            .Range(0, size)
            .Select(rank => new Thread(() =>
            {
                try
                {
                    using var client =
                        rank == 0 ? null : TcpStore.Create("127.0.0.1", server.ServerPort!.Value, isServer: false);
                    using var group = TcpProcessGroup.Connect(
                        rank == 0 ? server : client!,
                        rank,
                        size,
                        tcp,
                        prefix: plan.Id
                    );
                    var r = Trainer.Run(trainConfig, train, test, dataSource, rank == 0 ? progress : null, group);
                    if (rank == 0)
                        lead = r;
                }
                catch (Exception e)
                {
                    errors[rank] = e;
                }
            })
            {
                IsBackground = true,
                Name = $"hpc-study-rank{rank}",
            })
            .ToArray();
        foreach (var t in threads)
            t.Start();
        var deadline = DateTime.UtcNow + Timeout;
        foreach (var t in threads)
            if (!t.Join(Max(deadline - DateTime.UtcNow, TimeSpan.Zero)))
                return StrategyRunResult.Failed(plan, $"the run did not finish within {Timeout}");
        if (errors.FirstOrDefault(e => e != null) is { } error)
            return StrategyRunResult.Failed(plan, error.Message);
        var summary = lead!.ToSummary();
        File.WriteAllText(Path.Combine(runDir, "result.json"), summary.ToJson());
        return StrategyRunResult.From(
            plan,
            summary,
            config.TargetAccuracy,
            config.PricePerHour,
            wall.Elapsed.TotalSeconds,
            Path.Combine("runs", plan.Id, "trace-rank0.json")
        );
    }

    private static TimeSpan Max(TimeSpan a, TimeSpan b) => a > b ? a : b;
}
