using System.Globalization;
using System.Text;
using System.Text.Json;

namespace HpcEngine.Benchmarks;

/// <summary>Writes a strategy matrix's results: results.json (schema in docs/BENCHMARKS.md), results.csv (one flat
/// row per run), the plots (PNG and SVG) and report.md (table, plots, conclusions drawn from the numbers).</summary>
public static class StrategyReport
{
    /// <summary>results.csv's columns, in order.</summary>
    public static IReadOnlyList<string> CsvColumns { get; } =
    [
        "strategy",
        "codec",
        "workers",
        "status",
        "final_test_accuracy",
        "time_to_target_s",
        "train_time_s",
        "samples_per_s",
        "bytes_per_worker_per_step",
        "compute_s",
        "communication_s",
        "wait_s",
        "compress_s",
        "staleness_mean",
        "staleness_max",
        "residual_norm",
        "estimated_cost",
        "cost_to_target",
        "faults",
        "goodput_samples_per_s",
        "samples_lost",
    ];

    /// <summary>Reads a results.json back (the inverse of <see cref="Write"/>'s JSON); a file that does not follow the
    /// schema is an error naming the field.</summary>
    public static (
        StrategyStudyConfig Config,
        List<StrategyRunResult> Runs,
        List<(StrategyRunPlan Plan, string Why)> Skipped
    ) Read(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        try
        {
            var c = root.GetProperty("config");
            string? Str(JsonElement e, string k) =>
                e.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            double Num(JsonElement e, string k) =>
                e.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
            double? NumOrNull(JsonElement e, string k) =>
                e.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
            var config = new StrategyStudyConfig(
                Str(c, "model")!,
                c.GetProperty("workers").EnumerateArray().Select(w => w.GetInt32()).ToArray(),
                c.GetProperty("epochs").GetInt32(),
                c.GetProperty("batch_size_per_worker").GetInt32(),
                c.GetProperty("strategies").EnumerateArray().Select(x => x.GetString()!).ToArray(),
                c.GetProperty("codecs").EnumerateArray().Select(x => x.GetString()!).ToArray(),
                Num(c, "target_accuracy"),
                Str(c, "bandwidth"),
                Str(c, "latency"),
                Str(c, "straggler"),
                Num(c, "price_per_hour"),
                Str(c, "data"),
                c.GetProperty("seed").GetUInt64(),
                c.GetProperty("eval_every_steps").GetInt32(),
                DateTime.Parse(Str(c, "started_utc")!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind),
                c.GetProperty("cores").GetInt32(),
                Str(c, "os") ?? "",
                Str(c, "currency") ?? "USD",
                Str(c, "fault_plan"),
                c.TryGetProperty("max_restarts", out var mr) ? mr.GetInt32() : 0
            );
            var runs = root.GetProperty("runs")
                .EnumerateArray()
                .Select(r => new StrategyRunResult
                {
                    Strategy = Str(r, "strategy")!,
                    Codec = Str(r, "codec")!,
                    Workers = r.GetProperty("workers").GetInt32(),
                    Status = Str(r, "status") ?? "ok",
                    Error = Str(r, "error"),
                    FinalTestAccuracy = Num(r, "final_test_accuracy"),
                    TimeToTargetSeconds = NumOrNull(r, "time_to_target_s"),
                    TrainSeconds = Num(r, "train_time_s"),
                    SamplesPerSecond = Num(r, "samples_per_s"),
                    BytesPerWorkerPerStep = Num(r, "bytes_per_worker_per_step"),
                    ComputeSeconds = Num(r, "compute_s"),
                    CommunicationSeconds = Num(r, "communication_s"),
                    WaitSeconds = Num(r, "wait_s"),
                    CompressSeconds = Num(r, "compress_s"),
                    StalenessMean = Num(r, "staleness_mean"),
                    StalenessMax = Num(r, "staleness_max"),
                    ResidualNorm = Num(r, "residual_norm"),
                    EstimatedCost = Num(r, "estimated_cost"),
                    CostToTarget = NumOrNull(r, "cost_to_target"),
                    ProcessWallSeconds = Num(r, "process_wall_s"),
                    Trace = Str(r, "trace"),
                    Curve = r.GetProperty("curve")
                        .EnumerateArray()
                        .Select(p =>
                            p.EnumerateArray()
                                .Select(v => v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN)
                                .ToArray()
                        )
                        .Where(p => p.All(double.IsFinite))
                        .ToArray(),
                    Faults = Str(r, "faults"),
                    Goodput = Num(r, "goodput_samples_per_s"),
                    SamplesLost = NumOrNull(r, "samples_lost") is double lost ? (long)lost : null,
                    ReplicasAgree =
                        r.TryGetProperty("replicas_agree", out var ra)
                        && ra.ValueKind is JsonValueKind.True or JsonValueKind.False
                            ? ra.GetBoolean()
                            : null,
                    Membership =
                        r.TryGetProperty("membership", out var m) && m.ValueKind == JsonValueKind.Array
                            ? m.Deserialize<Training.MembershipSummary[]>() ?? []
                            : [],
                })
                .ToList();
            var skipped = root.TryGetProperty("skipped", out var sk)
                ? sk.EnumerateArray()
                    .Select(x =>
                        (
                            new StrategyRunPlan(
                                Str(x, "strategy")!,
                                Str(x, "codec")!,
                                x.GetProperty("workers").GetInt32()
                            ),
                            Str(x, "reason") ?? ""
                        )
                    )
                    .ToList()
                : [];
            return (config, runs, skipped);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException(
                $"{path} does not follow the results.json schema (docs/BENCHMARKS.md): {e.Message}",
                e
            );
        }
    }

    /// <summary>Writes results.json, results.csv and report.md into <paramref name="dir"/>; <paramref name="plots"/>
    /// (the CLI's draws PNG and SVG charts) returns the image files the report shows, relative to it.</summary>
    public static void Write(
        string dir,
        StrategyStudyConfig config,
        IReadOnlyList<StrategyRunResult> runs,
        IReadOnlyList<(StrategyRunPlan Plan, string Why)> skipped,
        Func<string, IReadOnlyList<StrategyRunResult>, StrategyStudyConfig, IReadOnlyList<string>>? plots = null
    )
    {
        var json = new Dictionary<string, object?>
        {
            ["config"] = new Dictionary<string, object?>
            {
                ["model"] = config.Model,
                ["workers"] = config.Workers,
                ["epochs"] = config.Epochs,
                ["batch_size_per_worker"] = config.BatchSize,
                ["strategies"] = config.Strategies,
                ["codecs"] = config.Codecs,
                ["target_accuracy"] = config.TargetAccuracy,
                ["bandwidth"] = config.Bandwidth,
                ["latency"] = config.Latency,
                ["straggler"] = config.Straggler,
                ["price_per_hour"] = config.PricePerHour,
                ["currency"] = config.Currency,
                ["data"] = config.Data,
                ["seed"] = config.Seed,
                ["eval_every_steps"] = config.EvalEvery,
                ["started_utc"] = config.Started.ToString("o", CultureInfo.InvariantCulture),
                ["cores"] = config.Cores,
                ["os"] = config.Os,
                ["fault_plan"] = config.FaultPlan,
                ["max_restarts"] = config.MaxRestarts,
            },
            ["runs"] = runs.Select(r => r.ToJson()).ToArray(),
            ["skipped"] = skipped
                .Select(s => new Dictionary<string, object>
                {
                    ["strategy"] = s.Plan.Strategy,
                    ["codec"] = s.Plan.Codec,
                    ["workers"] = s.Plan.Workers,
                    ["reason"] = s.Why,
                })
                .ToArray(),
        };
        File.WriteAllText(
            Path.Combine(dir, "results.json"),
            JsonSerializer.Serialize(json, Training.JsonNumbers.Options)
        );
        var csv = new StringBuilder(string.Join(",", CsvColumns)).Append('\n');
        foreach (var r in runs)
        {
            var row = r.ToJson();
            csv.Append(string.Join(",", CsvColumns.Select(c => Format(row[c])))).Append('\n');
        }
        File.WriteAllText(Path.Combine(dir, "results.csv"), csv.ToString());
        var images = plots?.Invoke(dir, runs.Where(r => r.Status != "failed").ToList(), config) ?? [];
        File.WriteAllText(Path.Combine(dir, "report.md"), Markdown(config, runs, skipped, images));
    }

    private static string Format(object? v) =>
        v switch
        {
            null => "",
            double d => d.ToString("G6", CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            string s when s.Contains(',', StringComparison.Ordinal) || s.Contains('"', StringComparison.Ordinal) => "\""
                + s.Replace("\"", "\"\"", StringComparison.Ordinal)
                + "\"",
            _ => v.ToString() ?? "",
        };

    private static string Markdown(
        StrategyStudyConfig c,
        IReadOnlyList<StrategyRunResult> runs,
        IReadOnlyList<(StrategyRunPlan Plan, string Why)> skipped,
        IReadOnlyList<string> plots
    )
    {
        var md = new StringBuilder();
        md.Append(CultureInfo.InvariantCulture, $"# Strategy benchmark: {c.Model}, {c.Epochs} epochs\n\n");
        md.Append(
            CultureInfo.InvariantCulture,
            $"Workers {string.Join(", ", c.Workers)} (batch {c.BatchSize} per worker), network {(c.Bandwidth ?? "loopback")}{(c.Latency != null ? $" / {c.Latency} latency" : "")}, straggler {c.Straggler ?? "none"}, target accuracy {c.TargetAccuracy:F2}, price {c.PricePerHour:F2} {c.Currency} per worker-hour, seed {c.Seed}; {c.Cores} cores, started {c.Started:u}.\n\n"
        );
        md.Append(
            CultureInfo.InvariantCulture,
            $"| strategy | codec | workers | final acc | time to target (s) | train time (s) | samples/s | "
                + $"KB/worker/step | compute s | comm s | wait s | staleness mean/max | cost ({c.Currency}) | cost to "
                + $"target ({c.Currency}) |\n"
        );
        md.Append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var r in runs)
        {
            if (r.Status == "failed")
            {
                md.Append(
                    CultureInfo.InvariantCulture,
                    $"| {r.Strategy}{(r.Faults != null ? " (faults)" : "")} | {r.Codec} | {r.Workers} | failed: {r.Error?.Replace("|", "/", StringComparison.Ordinal)} |||||||||||\n"
                );
                continue;
            }
            md.Append(
                CultureInfo.InvariantCulture,
                $"| {r.Strategy}{(r.Faults != null ? " (faults)" : "")} | {r.Codec} | {r.Workers} | {r.FinalTestAccuracy:F4}{(r.Status == "diverged" ? " (diverged)" : "")} | {(r.TimeToTargetSeconds is double t ? t.ToString("F1", CultureInfo.InvariantCulture) : "not reached")} | {r.TrainSeconds:F1} | {r.SamplesPerSecond:F0} | {r.BytesPerWorkerPerStep / 1e3:F1} | {r.ComputeSeconds:F1} | {r.CommunicationSeconds:F1} | {r.WaitSeconds:F1} | {r.StalenessMean:F2} / {r.StalenessMax:F0} | {r.EstimatedCost:F4} | {(r.CostToTarget is double ct ? ct.ToString("F4", CultureInfo.InvariantCulture) : "–")} |\n"
            );
        }
        if (skipped.Count > 0)
        {
            md.Append("\nSkipped: ");
            md.Append(
                string.Join(
                    "; ",
                    skipped
                        .GroupBy(s => s.Why)
                        .Select(g =>
                            $"{string.Join(", ", g.Select(s => $"{s.Plan.Strategy} + {s.Plan.Codec}"))} ({g.Key})"
                        )
                )
            );
            md.Append('\n');
        }
        md.Append('\n');
        StrategyFaultReport.Append(md, runs);
        foreach (var p in plots)
            md.Append(CultureInfo.InvariantCulture, $"![{Path.GetFileNameWithoutExtension(p)}]({p})\n\n");
        md.Append("## Conclusions (computed from the table)\n\n");
        foreach (var line in Conclusions(c, runs.Where(r => r.Status != "failed").ToList()))
            md.Append("- ").Append(line).Append('\n');
        md.Append(
            "\nTimes are per worker, averaged over workers, on the training clock (evaluation excluded). Bytes are "
                + "what the TCP transport put on the wire (frame headers included). Each run's Chrome trace is under "
                + "runs/ (open in chrome://tracing or ui.perfetto.dev).\n"
        );
        return md.ToString();
    }

    /// <summary>Statements that follow from the numbers: fastest and cheapest to the target, best accuracy, and what
    /// each codec saved in bytes against its uncompressed counterpart and what it cost in accuracy.</summary>
    public static IEnumerable<string> Conclusions(StrategyStudyConfig c, IReadOnlyList<StrategyRunResult> ok)
    {
        var diverged = ok.Where(r => r.Status == "diverged").ToList();
        if (diverged.Count > 0)
            yield return "diverged (loss became NaN or infinite): "
                + string.Join(", ", diverged.Select(r => r.Label))
                + "; left out of the comparisons below.";
        ok = ok.Where(r => r.Status == "ok").ToList();
        if (ok.Count == 0)
        {
            yield return "no run finished healthy.";
            yield break;
        }
        var reached = ok.Where(r => r.TimeToTargetSeconds != null).ToList();
        if (reached.Count == 0)
            yield return $"no run reached {c.TargetAccuracy:F2} test accuracy within {c.Epochs} epochs.";
        else
        {
            var fastest = reached.MinBy(r => r.TimeToTargetSeconds)!;
            var cheapest = reached.MinBy(r => r.CostToTarget)!;
            yield return $"fastest to {c.TargetAccuracy:F2}: **{fastest.Label}** in {fastest.TimeToTargetSeconds:F1} s ({reached.Count} of {ok.Count} runs reached it).";
            yield return $"cheapest to {c.TargetAccuracy:F2}: **{cheapest.Label}** at {cheapest.CostToTarget:F4} {c.Currency} ({c.PricePerHour:F2} {c.Currency} per worker-hour).";
            var sync = reached.FirstOrDefault(r =>
                r.Strategy == "sync" && r.Codec == "none" && r.Workers == fastest.Workers && r.Faults == fastest.Faults
            );
            if (sync != null && sync != fastest)
                yield return $"against sync + none ({sync.TimeToTargetSeconds:F1} s), {fastest.Label} is {sync.TimeToTargetSeconds / fastest.TimeToTargetSeconds:F2}x faster to the target.";
        }
        var best = ok.MaxBy(r => r.FinalTestAccuracy)!;
        yield return $"best final accuracy: **{best.Label}** {best.FinalTestAccuracy:F4}; highest throughput: **{ok.MaxBy(r => r.SamplesPerSecond)!.Label}** {ok.Max(r => r.SamplesPerSecond):F0} samples/s.";
        foreach (var r in ok.Where(r => r.Codec != "none"))
        {
            var baseRun = ok.FirstOrDefault(b =>
                b.Strategy == r.Strategy && b.Workers == r.Workers && b.Codec == "none" && b.Faults == r.Faults
            );
            if (baseRun == null || r.BytesPerWorkerPerStep <= 0)
                continue;
            double ratio = baseRun.BytesPerWorkerPerStep / r.BytesPerWorkerPerStep;
            double points = (baseRun.FinalTestAccuracy - r.FinalTestAccuracy) * 100;
            double savedKb = (baseRun.BytesPerWorkerPerStep - r.BytesPerWorkerPerStep) / 1e3;
            // Bytes saved are only half the story: what the codec did to the clock, and how much of it was compressing.
            string time =
                $"; train time {r.TrainSeconds:F1} s against {baseRun.TrainSeconds:F1} s ({r.TrainSeconds / baseRun.TrainSeconds:F2}x{(r.TrainSeconds > baseRun.TrainSeconds ? ", slower" : "")}), of which compressing {r.CompressSeconds:F2} s per worker";
            yield return points > 0.01
                ? $"{r.Label}: {ratio:F1}x fewer bytes per step than {baseRun.Codec} ({savedKb:F1} KB saved per worker-step) for {points:F2} accuracy points lost — {savedKb / points:F1} KB per worker-step saved per point{time}."
                : $"{r.Label}: {ratio:F1}x fewer bytes per step than {baseRun.Codec} ({savedKb:F1} KB saved per worker-step) at no accuracy cost ({-points:F2} points){time}.";
        }
        var stale = ok.Where(r => r.StalenessMax > 0).ToList();
        if (stale.Count > 0)
            yield return "staleness observed: "
                + string.Join(", ", stale.Select(r => $"{r.Label} mean {r.StalenessMean:F2}, max {r.StalenessMax:F0}"))
                + ".";
    }
}
