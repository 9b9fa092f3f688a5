using System.Globalization;
using HpcEngine.Benchmarks;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

/// <summary><c>hpcengine bench strategies</c>: the library's <see cref="StrategyStudy"/> with worker processes
/// (<see cref="ProcessStrategyRunner"/>) and the CLI's plots (<see cref="StrategyPlots"/>).</summary>
internal static class StrategyBench
{
    // The study's settings as this verb's flags, for its errors.
    private static readonly Dictionary<string, string> Flags = new(StringComparer.Ordinal)
    {
        [nameof(StrategyStudyConfig.Codecs)] = "--compress",
        [nameof(StrategyStudyConfig.BatchSize)] = "--batch-size",
        [nameof(StrategyStudyConfig.TargetAccuracy)] = "--target-accuracy",
        [nameof(StrategyStudyConfig.PricePerHour)] = "--price-per-hour",
    };

    private static string Flag(string property) =>
        Flags.TryGetValue(property, out var f) ? f : "--" + property.ToLowerInvariant();

    public static int Run(BenchOptions o)
    {
        string outDir = o.Out
            ?? throw new ArgumentException($"bench strategies{(o.Render ? " --render" : "")} needs --out DIR");
        if (o.Render)
            return Render(outDir);
        var workers = List(o.Workers, "--workers")
            .Select(w =>
                int.TryParse(w, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)
                    ? n
                    : throw new ArgumentException($"--workers: '{w}' is not a worker count")
            )
            .Distinct()
            .ToArray();
        var config = new StrategyStudyConfig(
            o.Model!,
            workers,
            o.Epochs,
            o.BatchSize,
            List(o.Strategies, "--strategies"),
            List(o.Compress, "--compress"),
            o.TargetAccuracy,
            o.Bandwidth,
            o.Latency,
            o.Straggler,
            o.PricePerHour,
            o.Data,
            o.Seed,
            o.EvalEvery,
            DateTime.UtcNow,
            Environment.ProcessorCount,
            Environment.OSVersion.ToString(),
            o.Currency
        );
        try
        {
            StrategyStudy.Validate(config);
        }
        catch (SettingsException e)
        {
            throw new ArgumentException(e.Describe(Flag), e);
        }
        // Fail on unusable data now, not once per run of the matrix.
        var (train, test, source) = Datasets.DataSources.LoadFashionMnist(o.Data);
        train.Dispose();
        test.Dispose();
        Console.WriteLine($"bench strategies: data {source}");
        var results = StrategyStudy.Run(
            config,
            outDir,
            new ProcessStrategyRunner(),
            Console.WriteLine,
            StrategyPlots.Draw
        );
        // A diverged run is a measured outcome, not a failure of the benchmark.
        return results.All(r => r.Status != "failed") ? 0 : 1;
    }

    /// <summary>Redraws everything but the runs from DIR/results.json (after changing how plots or the report look, or
    /// after editing the file by hand).</summary>
    private static int Render(string outDir)
    {
        string path = Path.Combine(outDir, "results.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} does not exist: run the matrix first", path);
        var (config, runs, skipped) = StrategyReport.Read(path);
        StrategyReport.Write(outDir, config, runs, skipped, StrategyPlots.Draw);
        Console.WriteLine($"rendered {runs.Count} runs from {path}: {Path.Combine(outDir, "report.md")}");
        return 0;
    }

    private static string[] List(string value, string option)
    {
        var items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return items.Length > 0
            ? items.Distinct().ToArray()
            : throw new ArgumentException($"{option} needs at least one entry");
    }
}
