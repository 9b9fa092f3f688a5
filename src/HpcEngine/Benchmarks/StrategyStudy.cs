using System.Diagnostics;
using System.Globalization;
using HpcEngine.Compression;
using HpcEngine.Distributed.Tcp;
using HpcEngine.Parallel;
using HpcEngine.Training;

namespace HpcEngine.Benchmarks;

/// <summary>Runs one planned combination of a strategy study. <see cref="StrategyStudy"/> calls it once per plan, in
/// order.</summary>
public interface IStrategyRunner
{
    /// <summary>Runs <paramref name="plan"/> and returns its figures (a failure as <see
    /// cref="StrategyRunResult.Failed"/>, not an exception); <paramref name="runDir"/> is the run's own, empty
    /// directory (logs, traces, summary), and <paramref name="progress"/> takes lines for people.</summary>
    StrategyRunResult Run(StrategyRunPlan plan, StrategyStudyConfig config, string runDir, Action<string> progress);
}

/// <summary>The strategy study: the same model, data and seed trained under every combination of strategy, codec
/// and worker count, with time and cost to the target accuracy, bytes on the wire and where the time went, written
/// as results.json / results.csv / report.md (<see cref="StrategyReport"/>). <c>hpcengine bench strategies</c> runs
/// it with worker processes through the launcher; an embedding tool passes its own <see cref="IStrategyRunner"/>
/// (or <see cref="InProcessStrategyRunner"/>).</summary>
public static class StrategyStudy
{
    /// <summary>Why a codec does not combine with zero1 and ssp.</summary>
    public const string ShardsTakeNoCodec =
        "zero1 and ssp exchange parameter shards, not a dense average a codec could compress";

    /// <summary>Checks every setting before the first run (not after an hour of them), naming the bad one.</summary>
    public static void Validate(StrategyStudyConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Workers.Length == 0 || config.Workers.Any(w => w < 2))
            throw new SettingsException(
                nameof(config.Workers),
                $"{{Workers}}: each run needs 2 or more workers, got {string.Join(",", config.Workers)}"
            );
        if (config.Strategies.Length == 0)
            throw new SettingsException(nameof(config.Strategies), "{Strategies} needs at least one strategy");
        if (config.Codecs.Length == 0)
            throw new SettingsException(
                nameof(config.Codecs),
                "{Codecs} needs at least one codec (none for uncompressed)"
            );
        foreach (var s in config.Strategies)
            Named(nameof(config.Strategies), s, StrategySpec.Parse);
        foreach (var c in config.Codecs)
            Named(nameof(config.Codecs), c, CodecSpec.Parse);
        if (config.Epochs <= 0)
            throw new SettingsException(nameof(config.Epochs), $"{{Epochs}} must be positive, got {config.Epochs}");
        if (config.BatchSize <= 0)
            throw new SettingsException(
                nameof(config.BatchSize),
                $"{{BatchSize}} must be positive, got {config.BatchSize}"
            );
        if (config.TargetAccuracy is <= 0 or > 1 || double.IsNaN(config.TargetAccuracy))
            throw new SettingsException(
                nameof(config.TargetAccuracy),
                $"{{TargetAccuracy}} must be in (0, 1], got {config.TargetAccuracy}"
            );
        if (!(config.PricePerHour >= 0) || !double.IsFinite(config.PricePerHour))
            throw new SettingsException(
                nameof(config.PricePerHour),
                $"{{PricePerHour}} must be 0 or more, got {config.PricePerHour}"
            );
        if (string.IsNullOrWhiteSpace(config.Currency) || config.Currency.Length > 8)
            throw new SettingsException(
                nameof(config.Currency),
                $"{{Currency}} must be a short code such as USD or EUR, got '{config.Currency}'"
            );
        if (NetworkEmulationOf(config) is { } emulation)
        {
            try
            {
                NetworkEmulation.Parse(emulation);
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                throw new SettingsException(
                    config.Bandwidth != null ? nameof(config.Bandwidth) : nameof(config.Latency),
                    $"{{Bandwidth}}/{{Latency}}: {e.Message}"
                );
            }
        }
        // The straggler must be a rank of every run of the matrix (a straggler that does not exist would not be
        // applied).
        if (config.Straggler != null)
            StragglerObserver.FactorFor(0, config.Workers.Min(), config.Straggler);
        if (config.FaultPlan != null)
            Named(nameof(config.FaultPlan), config.FaultPlan, FaultPlan.Parse);
        if (config.MaxRestarts < 0)
            throw new SettingsException(
                nameof(config.MaxRestarts),
                $"{{MaxRestarts}} must be 0 or more, got {config.MaxRestarts}"
            );
    }

    /// <summary>Why a strategy is left out of a study under faults.</summary>
    public const string NotElastic =
        "a parameter server with dedicated server ranks (ssp:K:S) is not recovered by elastic training";

    private static void Named<T>(string property, string text, Func<string, T> parse)
    {
        try
        {
            parse(text);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            throw new SettingsException(property, $"{{{property}}}: {e.Message}");
        }
    }

    /// <summary>The runs of the matrix (worker count, then strategy, then codec) and the combinations left out, with
    /// why.</summary>
    public static (List<StrategyRunPlan> Plans, List<(StrategyRunPlan Plan, string Why)> Skipped) Plan(
        StrategyStudyConfig config
    )
    {
        ArgumentNullException.ThrowIfNull(config);
        var plans = new List<StrategyRunPlan>();
        var skipped = new List<(StrategyRunPlan, string)>();
        foreach (int w in config.Workers)
        foreach (var s in config.Strategies)
        foreach (var c in config.Codecs)
        {
            var plan = new StrategyRunPlan(s, c, w);
            if (c != "none" && !StrategySpec.Parse(s).AcceptsCodec)
                skipped.Add((plan, ShardsTakeNoCodec));
            else if (config.FaultPlan != null && StrategySpec.Parse(s).DedicatedServers > 0)
                skipped.Add((plan, NotElastic));
            else
            {
                plans.Add(plan);
                // The same run under the faults, right after its fault-free twin (both elastic): goodput compares them.
                if (config.FaultPlan != null)
                    plans.Add(plan with { Faults = config.FaultPlan });
            }
        }
        return (plans, skipped);
    }

    /// <summary>S of ssp:K:S: server processes started beside the training workers (they are paid for too).</summary>
    public static int DedicatedServers(string strategy) => StrategySpec.Parse(strategy).DedicatedServers;

    /// <summary>The emulated network of the study's links (<c>bandwidth=…,latency=…</c>), null on plain
    /// loopback.</summary>
    public static string? NetworkEmulationOf(StrategyStudyConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Bandwidth == null && config.Latency == null)
            return null;
        return string.Join(
            ",",
            new[]
            {
                config.Bandwidth != null ? $"bandwidth={config.Bandwidth}" : null,
                config.Latency != null ? $"latency={config.Latency}" : null,
            }.Where(x => x != null)
        );
    }

    /// <summary>Redraws everything but the runs from <paramref name="dir"/>/results.json (after changing how plots or
    /// the report look, or after editing the file by hand); returns how many runs it rendered.</summary>
    public static int Render(
        string dir,
        Func<string, IReadOnlyList<StrategyRunResult>, StrategyStudyConfig, IReadOnlyList<string>>? plots = null
    )
    {
        string path = Path.Combine(dir, "results.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} does not exist: run the matrix first", path);
        var (config, runs, skipped) = StrategyReport.Read(path);
        StrategyReport.Write(dir, config, runs, skipped, plots);
        return runs.Count;
    }

    /// <summary>Runs every planned combination with <paramref name="runner"/>, saying progress (run i of n, % done,
    /// ETA) to <paramref name="log"/>, and rewrites the results after every run — an interrupted study keeps what it
    /// measured. A diverged run is a measured outcome; a failed one is recorded with its error.</summary>
    public static IReadOnlyList<StrategyRunResult> Run(
        StrategyStudyConfig config,
        string outDir,
        IStrategyRunner runner,
        Action<string>? log = null,
        Func<string, IReadOnlyList<StrategyRunResult>, StrategyStudyConfig, IReadOnlyList<string>>? plots = null
    )
    {
        ArgumentNullException.ThrowIfNull(outDir);
        ArgumentNullException.ThrowIfNull(runner);
        Validate(config);
        log ??= _ => { };
        Directory.CreateDirectory(outDir);
        var (plans, skipped) = Plan(config);
        log(
            $"{plans.Count} runs ({skipped.Count} combinations skipped), model {config.Model}, {config.Epochs} epochs, workers {string.Join(",", config.Workers)}, "
                + $"network {NetworkEmulationOf(config) ?? "loopback"}, straggler {config.Straggler ?? "none"} -> {outDir}"
        );
        foreach (var g in skipped.GroupBy(s => s.Why))
            log($"  skip {string.Join(", ", g.Select(s => $"{s.Plan.Strategy} + {s.Plan.Codec}"))}: {g.Key}");
        var results = new List<StrategyRunResult>();
        var overall = Stopwatch.StartNew();
        for (int i = 0; i < plans.Count; i++)
        {
            var plan = plans[i];
            string eta =
                i == 0
                    ? "?"
                    : TimeSpan
                        .FromSeconds(overall.Elapsed.TotalSeconds / i * (plans.Count - i))
                        .ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture);
            log(
                $"[{i + 1}/{plans.Count}, {100.0 * i / plans.Count:F0}% done, ETA {eta}] {plan.Strategy} + "
                    + $"{plan.Codec}, {plan.Workers} workers{(plan.Faults != null ? $", faults {plan.Faults}" : "")}"
            );
            string dir = Path.Combine(outDir, "runs", plan.Id);
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
            Directory.CreateDirectory(dir);
            var r = runner.Run(plan, config, dir, line => log($"    {line}"));
            results.Add(r);
            log(
                r.Status != "failed"
                    ? $"    -> {(r.Status == "diverged" ? "DIVERGED, " : "")}accuracy {r.FinalTestAccuracy:F4}, time to {config.TargetAccuracy:F2}: {(r.TimeToTargetSeconds is double t ? $"{t:F1}s" : "not reached")}, {r.SamplesPerSecond:F0} samples/s, {r.BytesPerWorkerPerStep / 1e3:F1} KB/worker/step"
                        + (
                            r.Faults != null
                                ? $", goodput {r.Goodput:F0} samples/s, {r.Membership.Count} membership change(s), samples lost {r.SamplesLost}"
                                : ""
                        )
                    : $"    -> FAILED: {r.Error}"
            );
            StrategyReport.Write(outDir, config, results, skipped, plots);
        }
        if (plans.Count == 0)
            StrategyReport.Write(outDir, config, results, skipped, plots);
        log($"done in {overall.Elapsed.TotalMinutes:F1} min: {Path.Combine(outDir, "report.md")}");
        return results;
    }
}
