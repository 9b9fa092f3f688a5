using System.Globalization;
using HpcEngine.Benchmarks;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

/// <summary><c>hpcengine bench strategies</c>: the library's <see cref="StrategyStudy"/> with worker processes
/// (<see cref="ProcessStrategyRunner"/>) and the CLI's plots (<see cref="StrategyPlots"/>).</summary>
internal static class StrategyBench
{
    // The study's settings as this verb's flags, for its errors: BatchSize is --batch-size, Codecs --compress.
    private static string Flag(string property) =>
        property == nameof(StrategyStudyConfig.Codecs) ? "--compress" : TrainFlags.Kebab(property);

    public static int Run(BenchOptions o)
    {
        string outDir = o.Out
            ?? throw new ArgumentException($"bench strategies{(o.Render ? " --render" : "")} needs --out DIR");
        if (o.Render)
        {
            int n = StrategyStudy.Render(outDir, StrategyPlots.Draw);
            Console.WriteLine($"rendered {n} runs from {outDir}/results.json: {Path.Combine(outDir, "report.md")}");
            return 0;
        }
        var workers = List(o.Workers, "--workers")
            .Select(w => TrainFlags.Parse("--workers", w, s => int.Parse(s, CultureInfo.InvariantCulture)))
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
            o.Currency,
            o.FaultPlan,
            o.MaxRestarts
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
        Console.WriteLine($"bench strategies: data {Datasets.DataSources.Check(o.Data)}");
        var runs = StrategyStudy.Run(
            config,
            outDir,
            new ProcessStrategyRunner(),
            Console.WriteLine,
            StrategyPlots.Draw
        );
        return runs.All(r => r.Status != "failed") ? 0 : 1; // a diverged run is a measured outcome, not a failure
    }

    private static string[] List(string value, string option)
    {
        var items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return items.Length > 0
            ? items.Distinct().ToArray()
            : throw new ArgumentException($"{option} needs at least one entry");
    }
}
