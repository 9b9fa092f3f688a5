using System.Diagnostics;
using System.Globalization;
using HpcEngine.Benchmarks;

namespace HpcEngine.Cli.Commands;

/// <summary>Runs each combination of <c>bench strategies</c> as a job of worker processes: <c>hpcengine launch</c> of
/// <c>hpcengine train</c>, with the study's network emulation and straggler in the workers' environment. A run's
/// output goes to its log.txt; its progress comes from its event file (rank 0's JSON lines), not from its console
/// output; its figures from rank 0's <c>--json</c> summary (the <see cref="Training.TrainResult"/> schema).</summary>
internal sealed class ProcessStrategyRunner : IStrategyRunner
{
    public StrategyRunResult Run(StrategyRunPlan plan, StrategyStudyConfig o, string dir, Action<string> progress)
    {
        string? emulation = StrategyStudy.NetworkEmulationOf(o);
        string json = Path.Combine(dir, "result.json"),
            events = Path.Combine(dir, "events.jsonl");
        var cmd = new List<string>
        {
            "hpcengine",
            "launch",
            "--nproc-per-node",
            (plan.Workers + StrategyStudy.DedicatedServers(plan.Strategy)).ToString(CultureInfo.InvariantCulture),
        };
        // A study under faults runs every combination elastic, its fault-free twin too (the same overheads).
        if (o.FaultPlan != null)
            cmd.Add("--elastic");
        if (plan.Faults != null && o.MaxRestarts > 0)
            cmd.AddRange(["--max-restarts", o.MaxRestarts.ToString(CultureInfo.InvariantCulture)]);
        cmd.AddRange([
            "--",
            "hpcengine",
            "train",
            "--model",
            o.Model,
            "--epochs",
            o.Epochs.ToString(CultureInfo.InvariantCulture),
            "--batch-size",
            o.BatchSize.ToString(CultureInfo.InvariantCulture),
            "--strategy",
            plan.Strategy,
            "--seed",
            o.Seed.ToString(CultureInfo.InvariantCulture),
            "--eval-every",
            o.EvalEvery.ToString(CultureInfo.InvariantCulture),
            "--json",
            json,
            "--trace-dir",
            dir,
            "--events",
            events,
            "--allow-divergence", // divergence is an outcome the matrix records
        ]);
        if (plan.Faults != null)
            cmd.AddRange(["--fault-plan", plan.Faults]);
        if (plan.Codec != "none")
            cmd.AddRange(["--compress", plan.Codec]);
        if (o.Data != null)
            cmd.AddRange(["--data", Path.GetFullPath(o.Data)]);
        var psi = LaunchCommand.StartInfo(cmd);
        if (emulation != null)
            psi.Environment["HPCENGINE_NET_EMULATE"] = emulation;
        if (o.Straggler != null)
            psi.Environment["HPCENGINE_STRAGGLER"] = o.Straggler;
        else
            psi.Environment.Remove("HPCENGINE_STRAGGLER");
        var wall = Stopwatch.StartNew();
        using var log = new StreamWriter(Path.Combine(dir, "log.txt"));
        var tail = new Queue<string>();
        var lastProgress = Stopwatch.StartNew();
        void OnLine(string? line)
        {
            if (line == null)
                return;
            lock (log)
            {
                log.WriteLine(line);
                tail.Enqueue(line);
                if (tail.Count > 8)
                    tail.Dequeue();
            }
        }
        // The run's progress comes from its event file (rank 0's JSON lines), not from its console output: every
        // epoch, and within an epoch every 10 s.
        var lines = new Training.LineObserver(progress);
        void OnEvent(object? e)
        {
            if (e is Training.EpochEvent epoch)
                lines.OnEpoch(epoch);
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
            foreach (var t in traces)
                File.Delete(t);
        }
        return StrategyRunResult.From(
            plan,
            Training.TrainSummary.Read(json),
            o.TargetAccuracy,
            o.PricePerHour,
            wall.Elapsed.TotalSeconds,
            Path.Combine("runs", plan.Id, "trace.json")
        );
    }
}
