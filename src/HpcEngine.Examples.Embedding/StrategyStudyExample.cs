using HpcEngine.Benchmarks;
using HpcEngine.Datasets;

namespace HpcEngine.Examples.Embedding;

/// <summary>How a .NET tool runs the strategy study from C#: the matrix as a typed config, the library's planner,
/// runner loop, results schema, cost and conclusions — here with the in-process runner (ranks as threads over
/// loopback TCP); <c>hpcengine bench strategies</c> runs the same study with worker processes.</summary>
public static class StrategyStudyExample
{
    /// <summary>Sync against local SGD (with and without top-k compression) on 2 workers; writes results.json,
    /// results.csv and report.md into <paramref name="outDir"/> and returns the runs.</summary>
    public static IReadOnlyList<StrategyRunResult> Run(string? dataDir, int epochs, string outDir, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(log);
        var (train, test, source) = DataSources.LoadFashionMnist(dataDir);
        using (train)
        using (test)
        {
            var config = new StrategyStudyConfig(
                Model: "mlp",
                Workers: [2],
                Epochs: epochs,
                BatchSize: 128,
                Strategies: ["sync", "localsgd:4"],
                Codecs: ["none", "topk:0.05"],
                TargetAccuracy: 0.6,
                Bandwidth: null,
                Latency: null,
                Straggler: null,
                PricePerHour: 3.06,
                Data: dataDir,
                Seed: 1,
                EvalEvery: 20,
                Started: DateTime.UtcNow,
                Cores: Environment.ProcessorCount,
                Os: Environment.OSVersion.ToString()
            );
            var runs = StrategyStudy.Run(
                config,
                outDir,
                new InProcessStrategyRunner(train, test, source),
                log.WriteLine
            );
            foreach (var line in StrategyReport.Conclusions(config, runs.Where(r => r.Status != "failed").ToList()))
                log.WriteLine("- " + line);
            return runs;
        }
    }
}
