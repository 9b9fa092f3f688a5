using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Cli.Commands;

/// <summary>One planned run of the strategy matrix.</summary>
internal sealed record StrategyRunPlan(string Strategy, string Codec, int Workers)
{
    public string Id => $"{Strategy}_{Codec}_w{Workers}".Replace(':', '-');
}

/// <summary><c>hpcengine bench strategies</c>: trains the same model on the same data and seed under every combination of
/// strategy, codec and worker count — each run a set of worker processes started through the launcher, with the
/// collective layer's network emulation and straggler injection — shows progress per run and overall, and writes
/// results.json, results.csv, plots and report.md (see <see cref="StrategyReport"/>).</summary>
internal static class StrategyBench
{
    public static int Run(BenchOptions o)
    {
        if (o.Render) return Render(o.Out ?? throw new ArgumentException("bench strategies --render needs --out DIR"));
        var workers = ParseList(o.Workers, "--workers").Select(w => int.TryParse(w, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 2
            ? n : throw new ArgumentException($"--workers: '{w}' is not a worker count of 2 or more")).Distinct().ToArray();
        var strategies = ParseList(o.Strategies, "--strategies");
        var codecs = ParseList(o.Compress, "--compress");
        // Check every name now rather than after an hour of runs.
        foreach (var c in codecs) Compression.GradientCodec.Create(c);
        foreach (var s in strategies) CheckStrategy(s);
        if (o.Epochs <= 0) throw new ArgumentException($"--epochs must be positive, got {o.Epochs}");
        if (o.TargetAccuracy is <= 0 or > 1) throw new ArgumentException($"--target-accuracy must be in (0, 1], got {o.TargetAccuracy}");
        if (!(o.PricePerHour >= 0) || !double.IsFinite(o.PricePerHour)) throw new ArgumentException($"--price-per-hour must be 0 or more, got {o.PricePerHour}");
        if (string.IsNullOrWhiteSpace(o.Currency) || o.Currency.Length > 8) throw new ArgumentException($"--currency must be a short code such as USD or EUR, got '{o.Currency}'");
        string? emulation = o.Bandwidth == null && o.Latency == null ? null
            : string.Join(",", new[] { o.Bandwidth != null ? $"bandwidth={o.Bandwidth}" : null, o.Latency != null ? $"latency={o.Latency}" : null }.Where(x => x != null));
        if (emulation != null) NetworkEmulation.Parse(emulation);
        // The straggler must be a rank of every run of the matrix (a straggler that does not exist would not be applied).
        if (o.Straggler != null) TrainFlags.Parse("--straggler", o.Straggler, s => Training.StragglerObserver.FactorFor(0, workers.Min(), s));
        string outDir = o.Out ?? throw new ArgumentException("bench strategies needs --out DIR");
        // Fail on unusable data now, not once per run of the matrix.
        var (checkTrain, checkTest, source) = Datasets.DataSources.LoadFashionMnist(o.Data);
        checkTrain.Dispose();
        checkTest.Dispose();
        Directory.CreateDirectory(outDir);

        var plans = new List<StrategyRunPlan>();
        var skipped = new List<(StrategyRunPlan Plan, string Why)>();
        foreach (int w in workers)
            foreach (var s in strategies)
                foreach (var c in codecs)
                {
                    var plan = new StrategyRunPlan(s, c, w);
                    if (c != "none" && !Parallel.StrategySpec.Parse(s).AcceptsCodec)
                        skipped.Add((plan, "zero1 and ssp exchange parameter shards, not a dense average a codec could compress"));
                    else plans.Add(plan);
                }
        var config = new StrategyBenchConfig(o.Model!, workers, o.Epochs, o.BatchSize, strategies, codecs, o.TargetAccuracy, o.Bandwidth, o.Latency,
            o.Straggler, o.PricePerHour, o.Data, o.Seed, o.EvalEvery, DateTime.UtcNow, Environment.ProcessorCount, Environment.OSVersion.ToString(), o.Currency);
        Console.WriteLine($"bench strategies: {plans.Count} runs ({skipped.Count} combinations skipped), data {source}, model {o.Model}, {o.Epochs} epochs, workers {string.Join(",", workers)}, network {emulation ?? "loopback"}, straggler {o.Straggler ?? "none"} -> {outDir}");
        foreach (var g in skipped.GroupBy(s => s.Why)) Console.WriteLine($"  skip {string.Join(", ", g.Select(s => $"{s.Plan.Strategy} + {s.Plan.Codec}"))}: {g.Key}");

        var results = new List<StrategyRunResult>();
        var overall = Stopwatch.StartNew();
        for (int i = 0; i < plans.Count; i++)
        {
            var plan = plans[i];
            string eta = i == 0 ? "?" : TimeSpan.FromSeconds(overall.Elapsed.TotalSeconds / i * (plans.Count - i)).ToString(@"hh\:mm\:ss", CultureInfo.InvariantCulture);
            string head = $"[{i + 1}/{plans.Count}, {100.0 * i / plans.Count:F0}% done, ETA {eta}] {plan.Strategy} + {plan.Codec}, {plan.Workers} workers";
            Console.WriteLine(head);
            var r = RunOne(plan, o, emulation, outDir, line => Console.WriteLine($"    {line}"));
            results.Add(r);
            Console.WriteLine(r.Status != "failed"
                ? $"    -> {(r.Status == "diverged" ? "DIVERGED, " : "")}accuracy {r.FinalTestAccuracy:F4}, time to {o.TargetAccuracy:F2}: {(r.TimeToTargetSeconds is double t ? $"{t:F1}s" : "not reached")}, {r.SamplesPerSecond:F0} samples/s, {r.BytesPerWorkerPerStep / 1e3:F1} KB/worker/step"
                : $"    -> FAILED: {r.Error}");
            // Write after every run: a long matrix that is interrupted keeps what it measured.
            StrategyReport.Write(outDir, config, results, skipped.Select(s => (s.Plan, s.Why)).ToList());
        }
        Console.WriteLine($"done in {overall.Elapsed.TotalMinutes:F1} min: {Path.Combine(outDir, "report.md")}");
        // A diverged run is a measured outcome, not a failure of the benchmark.
        return results.All(r => r.Status != "failed") ? 0 : 1;
    }

    /// <summary>Redraws everything but the runs from DIR/results.json (after changing how plots or the report look, or
    /// after editing the file by hand).</summary>
    private static int Render(string outDir)
    {
        string path = Path.Combine(outDir, "results.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} does not exist: run the matrix first", path);
        var (config, runs, skipped) = StrategyReport.Read(path);
        StrategyReport.Write(outDir, config, runs, skipped);
        Console.WriteLine($"rendered {runs.Count} runs from {path}: {Path.Combine(outDir, "report.md")}");
        return 0;
    }

    /// <summary>S of ssp:K:S: server processes started beside the --workers training ones.</summary>
    internal static int DedicatedServers(string strategy) => Parallel.StrategySpec.Parse(strategy).DedicatedServers;

    private static string[] ParseList(string value, string option)
    {
        var items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return items.Length > 0 ? items.Distinct().ToArray() : throw new ArgumentException($"{option} needs at least one entry");
    }

    private static void CheckStrategy(string s)
    {
        try { Parallel.StrategySpec.Parse(s); }
        catch (ArgumentException e) { throw new ArgumentException($"--strategies: {e.Message}", e); }
    }

    /// <summary>Runs one combination through the launcher; its output goes to the run's log.txt, progress lines of rank 0
    /// to <paramref name="progress"/>.</summary>
    private static StrategyRunResult RunOne(StrategyRunPlan plan, BenchOptions o, string? emulation, string outDir, Action<string> progress)
    {
        string dir = Path.Combine(outDir, "runs", plan.Id);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        string json = Path.Combine(dir, "result.json"), events = Path.Combine(dir, "events.jsonl");
        var cmd = new List<string> { "hpcengine", "launch", "--nproc-per-node", (plan.Workers + DedicatedServers(plan.Strategy)).ToString(CultureInfo.InvariantCulture), "--",
            "hpcengine", "train", "--model", o.Model!, "--epochs", o.Epochs.ToString(CultureInfo.InvariantCulture),
            "--batch-size", o.BatchSize.ToString(CultureInfo.InvariantCulture), "--strategy", plan.Strategy,
            "--seed", o.Seed.ToString(CultureInfo.InvariantCulture), "--eval-every", o.EvalEvery.ToString(CultureInfo.InvariantCulture),
            "--json", json, "--trace-dir", dir, "--events", events, "--allow-divergence" }; // divergence is an outcome the matrix records
        if (plan.Codec != "none") cmd.AddRange(["--compress", plan.Codec]);
        if (o.Data != null) cmd.AddRange(["--data", Path.GetFullPath(o.Data)]);
        var psi = LaunchCommand.StartInfo(cmd);
        if (emulation != null) psi.Environment["HPCENGINE_NET_EMULATE"] = emulation;
        if (o.Straggler != null) psi.Environment["HPCENGINE_STRAGGLER"] = o.Straggler;
        else psi.Environment.Remove("HPCENGINE_STRAGGLER");
        var wall = Stopwatch.StartNew();
        using var log = new StreamWriter(Path.Combine(dir, "log.txt"));
        var tail = new Queue<string>();
        var lastProgress = Stopwatch.StartNew();
        void OnLine(string? line)
        {
            if (line == null) return;
            lock (log)
            {
                log.WriteLine(line);
                tail.Enqueue(line);
                if (tail.Count > 8) tail.Dequeue();
            }
        }
        // The run's progress comes from its event file (rank 0's JSON lines), not from its console output: every
        // epoch, and within an epoch every 10 s.
        var lines = new Training.LineObserver(progress);
        void OnEvent(object? e)
        {
            if (e is Training.EpochEvent epoch) lines.OnEpoch(epoch);
            else if (e is Training.ProgressEvent p && lastProgress.Elapsed.TotalSeconds >= 10)
            {
                lastProgress.Restart();
                lines.OnProgress(p);
            }
        }
        using var follow = new EventFollower(events, OnEvent);
        using (var p = new Process { StartInfo = psi })
        {
            p.OutputDataReceived += (_, e) => OnLine(e.Data);
            p.ErrorDataReceived += (_, e) => OnLine(e.Data);
            p.Start();
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            p.WaitForExit();
            follow.Finish();
            if (p.ExitCode != 0 || !File.Exists(json))
                return StrategyRunResult.Failed(plan, $"exit code {p.ExitCode}: {string.Join(" | ", tail)}");
        }
        var traces = Directory.GetFiles(dir, "trace-rank*.json").OrderBy(f => f, StringComparer.Ordinal).ToArray();
        if (traces.Length > 0)
        {
            Diagnostics.TraceRecorder.Merge(traces, Path.Combine(dir, "trace.json"));
            foreach (var t in traces) File.Delete(t);
        }
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        return StrategyRunResult.From(plan, doc.RootElement, o.TargetAccuracy, o.PricePerHour, wall.Elapsed.TotalSeconds,
            Path.GetRelativePath(outDir, Path.Combine(dir, "trace.json")));
    }
}
