using System.Text.Json;

namespace HpcEngine.Tests.Cli;

/// <summary>`hpcengine bench strategies` end to end on a tiny dataset: what it writes, and that it matches the
/// documented schema (docs/BENCHMARKS.md).</summary>
[TestFixture]
public class StrategyBenchTests
{
    private static readonly string[] RunNumbers =
    [
        "final_test_accuracy",
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
        "process_wall_s",
    ];

    [Test]
    public void A_small_matrix_writes_results_json_csv_plots_report_and_traces()
    {
        string data = TestSupport.TempDir("hpc-sb-data-"),
            outDir = TestSupport.TempDir("hpc-sb-out-");
        try
        {
            TestSupport.WriteTinyFashionMnist(data, 512, 128);
            var r = TestSupport.RunCli(
                [
                    "bench",
                    "strategies",
                    "--workers",
                    "2",
                    "--model",
                    "mlp",
                    "--data",
                    data,
                    "--epochs",
                    "2",
                    "--batch-size",
                    "32",
                    "--strategies",
                    "sync,ssp:1",
                    "--compress",
                    "none,topk:0.1",
                    "--target-accuracy",
                    "0.05",
                    "--eval-every",
                    "4",
                    "--latency",
                    "1ms",
                    "--straggler",
                    "1:1.2",
                    "--currency",
                    "EUR",
                    "--out",
                    outDir,
                ],
                timeoutSeconds: 300
            );
            Assert.That(r.Exit, Is.Zero, r.Stdout + r.Stderr);
            Assert.That(
                r.Stdout,
                Does.Contain("[1/3").And.Contain("[3/3").And.Contain("ETA"),
                "progress per run and overall"
            );

            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")));
            var root = doc.RootElement;
            var config = root.GetProperty("config");
            Assert.That(config.GetProperty("model").GetString(), Is.EqualTo("mlp"));
            Assert.That(
                config.GetProperty("workers").EnumerateArray().Select(w => w.GetInt32()),
                Is.EqualTo(new[] { 2 })
            );
            Assert.That(config.GetProperty("straggler").GetString(), Is.EqualTo("1:1.2"));
            var runs = root.GetProperty("runs").EnumerateArray().ToArray();
            Assert.That(
                runs.Select(x => $"{x.GetProperty("strategy").GetString()}+{x.GetProperty("codec").GetString()}"),
                Is.EqualTo(new[] { "sync+none", "sync+topk:0.1", "ssp:1+none" })
            );
            foreach (var run in runs)
            {
                Assert.That(run.GetProperty("status").GetString(), Is.EqualTo("ok"));
                Assert.That(run.GetProperty("workers").GetInt32(), Is.EqualTo(2));
                foreach (var k in RunNumbers)
                    Assert.That(run.GetProperty(k).ValueKind, Is.EqualTo(JsonValueKind.Number), k);
                var ttt = run.GetProperty("time_to_target_s");
                Assert.That(
                    ttt.ValueKind,
                    Is.EqualTo(JsonValueKind.Number),
                    "a 0.05 target is reached at the first evaluation"
                );
                var curve = run.GetProperty("curve").EnumerateArray().ToArray();
                Assert.That(curve, Has.Length.GreaterThanOrEqualTo(2));
                Assert.That(curve.All(p => p.GetArrayLength() == 2 && p[1].GetDouble() is >= 0 and <= 1), Is.True);
                Assert.That(curve.Select(p => p[0].GetDouble()), Is.Ordered, "wall time grows along the curve");
                Assert.That(run.GetProperty("bytes_per_worker_per_step").GetDouble(), Is.GreaterThan(0));
                string trace = Path.Combine(outDir, run.GetProperty("trace").GetString()!);
                using var t = JsonDocument.Parse(File.ReadAllText(trace));
                var events = t
                    .RootElement.GetProperty("traceEvents")
                    .EnumerateArray()
                    .Where(e => e.GetProperty("ph").GetString() == "X")
                    .ToArray();
                Assert.That(
                    events.Select(e => e.GetProperty("pid").GetInt32()).Distinct().Order(),
                    Is.EqualTo(new[] { 0, 1 }),
                    "both ranks merged"
                );
                Assert.That(
                    events.Select(e => e.GetProperty("cat").GetString()),
                    Does.Contain("compute").And.Contain("communication")
                );
            }
            var ssp = runs[2];
            // ssp:1 lets a worker run at most k = 1 step ahead of the slowest, and either worker may be the one ahead:
            // a gradient lands at most k + 1 optimizer steps after the parameters it was computed from were read.
            Assert.That(ssp.GetProperty("staleness_max").GetDouble(), Is.InRange(0, 2));
            // Top-k sends (4 + 8k)-byte messages instead of the dense gradient.
            Assert.That(
                runs[1].GetProperty("bytes_per_worker_per_step").GetDouble(),
                Is.LessThan(runs[0].GetProperty("bytes_per_worker_per_step").GetDouble() / 2)
            );
            var skipped = root.GetProperty("skipped").EnumerateArray().ToArray();
            Assert.That(
                skipped.Select(s => s.GetProperty("strategy").GetString() + "+" + s.GetProperty("codec").GetString()),
                Is.EqualTo(new[] { "ssp:1+topk:0.1" })
            );

            var csv = File.ReadAllLines(Path.Combine(outDir, "results.csv"));
            Assert.That(csv, Has.Length.EqualTo(4));
            Assert.That(csv[0], Does.StartWith("strategy,codec,workers,status,final_test_accuracy,time_to_target_s"));
            foreach (var plot in new[] { "accuracy_vs_time", "accuracy_vs_bytes" })
            {
                var png = File.ReadAllBytes(Path.Combine(outDir, plot + ".png"));
                Assert.That(png.Take(4), Is.EqualTo(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }), plot);
                Assert.That(File.ReadAllText(Path.Combine(outDir, plot + ".svg")), Does.Contain("<svg"));
            }
            string report = File.ReadAllText(Path.Combine(outDir, "report.md"));
            Assert.That(
                report,
                Does.Contain("| strategy | codec |").And.Contain("accuracy_vs_time.png").And.Contain("fastest to 0.05")
            );
            Assert.That(
                report,
                Does.Contain("3.06 EUR per worker-hour").And.Contain("| cost (EUR) |"),
                "a cost has a currency"
            );
            Assert.That(config.GetProperty("currency").GetString(), Is.EqualTo("EUR"));
            Assert.That(
                report,
                Does.Match(
                    @"sync \+ topk:0\.1 \(2w\): [0-9.]+x fewer bytes per step .*; train time [0-9.]+ s against [0-9.]+ s \([0-9.]+x.*\), of which compressing [0-9.]+ s per worker"
                ),
                "a codec's time cost stands beside its byte savings"
            );
        }
        finally
        {
            Directory.Delete(data, true);
            Directory.Delete(outDir, true);
        }
    }

    [Test]
    public void Under_a_fault_plan_each_run_has_a_fault_free_twin_and_reports_goodput_and_recovery()
    {
        string data = TestSupport.TempDir("hpc-sbf-data-"),
            outDir = TestSupport.TempDir("hpc-sbf-out-");
        try
        {
            TestSupport.WriteTinyFashionMnist(data, 512, 128);
            var r = TestSupport.RunCli(
                [
                    "bench",
                    "strategies",
                    "--workers",
                    "3",
                    "--model",
                    "mlp",
                    "--data",
                    data,
                    "--epochs",
                    "2",
                    "--batch-size",
                    "32",
                    "--strategies",
                    "zero1,ssp:1:1",
                    "--compress",
                    "none",
                    "--fault-plan",
                    "kill:rank=2,step=3",
                    "--out",
                    outDir,
                ],
                timeoutSeconds: 300
            );
            Assert.That(r.Exit, Is.Zero, r.Stdout + r.Stderr);
            using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")));
            var root = doc.RootElement;
            Assert.That(
                root.GetProperty("config").GetProperty("fault_plan").GetString(),
                Is.EqualTo("kill:rank=2,step=3")
            );
            var runs = root.GetProperty("runs").EnumerateArray().ToArray();
            Assert.That(
                runs.Select(x => x.GetProperty("faults").GetString()),
                Is.EqualTo(new[] { null, "kill:rank=2,step=3" }),
                "the fault-free twin first, then the same run under faults"
            );
            Assert.That(
                root.GetProperty("skipped")[0].GetProperty("reason").GetString(),
                Does.Contain("not recovered by elastic training")
            );
            var faulty = runs[1];
            Assert.That(faulty.GetProperty("status").GetString(), Is.EqualTo("ok"));
            Assert.That(faulty.GetProperty("samples_lost").GetInt64(), Is.Zero);
            Assert.That(faulty.GetProperty("replicas_agree").GetBoolean(), Is.True);
            var e = faulty.GetProperty("membership").EnumerateArray().Single();
            Assert.That((e.GetProperty("kind").GetString(), e.GetProperty("rank").GetInt32()), Is.EqualTo(("lost", 2)));
            Assert.That(e.GetProperty("recovery_ms").GetDouble(), Is.GreaterThan(0));
            Assert.That(runs[0].GetProperty("membership").GetArrayLength(), Is.Zero);
            foreach (var run in runs)
                Assert.That(run.GetProperty("goodput_samples_per_s").GetDouble(), Is.GreaterThan(0));
            string report = File.ReadAllText(Path.Combine(outDir, "report.md"));
            Assert.That(report, Does.Contain("## Under faults: `kill:rank=2,step=3`"));
            Assert.That(
                report,
                Does.Match(
                    @"\| zero1 \| none \| 3 \| [0-9]+ \| [0-9]+ \| [0-9.]+ % \| lost 2 @3: [0-9]+ \| 0 \| yes \|"
                )
            );
            Assert.That(
                File.ReadAllLines(Path.Combine(outDir, "results.csv"))[0],
                Does.EndWith("faults,goodput_samples_per_s,samples_lost")
            );
        }
        finally
        {
            Directory.Delete(data, true);
            Directory.Delete(outDir, true);
        }
    }

    [Test]
    public void Bad_matrix_settings_fail_before_any_run_with_one_line()
    {
        foreach (
            var (args, mentions) in new (string[], string)[]
            {
                (["--strategies", "sync,hogwild", "--out", "x"], "hogwild"),
                (["--compress", "zip", "--out", "x"], "zip"),
                (["--workers", "1", "--out", "x"], "--workers"),
                (["--bandwidth", "fast", "--out", "x"], "fast"),
                (["--straggler", "1:0.5", "--out", "x"], "1:0.5"),
                (["--strategies", "sync"], "--out"),
                (["--data", "/nonexistent/fashion", "--out", "x"], "/nonexistent/fashion"),
                (["--render", "--out", "/nonexistent/results-dir"], "results.json"),
                (["--fault-plan", "explode:rank=1", "--out", "x"], "--fault-plan"),
                (["--fault-plan", "kill:rank=1,step=3", "--max-restarts", "-1", "--out", "x"], "--max-restarts"),
            }
        )
        {
            var r = TestSupport.RunCli(["bench", "strategies", .. args]);
            Assert.That(r.Exit, Is.EqualTo(2), string.Join(' ', args) + ": " + r.Stderr);
            Assert.That(r.Stderr.Trim().Split('\n'), Has.Length.EqualTo(1), r.Stderr);
            Assert.That(r.Stderr, Does.Contain(mentions));
            Assert.That(r.Stdout, Does.Not.Contain("[1/"), "nothing ran");
        }
        string dir = TestSupport.TempDir("hpc-render-");
        File.WriteAllText(Path.Combine(dir, "results.json"), "{\"runs\": []}");
        var bad = TestSupport.RunCli(["bench", "strategies", "--render", "--out", dir]);
        Assert.That(bad.Exit, Is.EqualTo(2), bad.Stderr);
        Assert.That(bad.Stderr, Does.Contain("does not follow the results.json schema"));
        Directory.Delete(dir, true);
    }
}
