using System.Diagnostics;
using System.Text.Json;

namespace HpcEngine.Tests.Cli;

/// <summary>A run's life as a user meets it: resume refuses a changed setup, results never carry made-up numbers,
/// divergence stops the run, bad output paths and options fail before any training.</summary>
[TestFixture]
public class RunLifecycleTests
{
    private string _dir = "";

    [SetUp]
    public void Data()
    {
        _dir = TestSupport.TempDir("hpc-life-");
        TestSupport.WriteTinyFashionMnist(_dir, 512, 128);
    }

    [TearDown]
    public void Clean() => Directory.Delete(_dir, true);

    private string Ckpt => Path.Combine(_dir, "ckpt");

    /// <summary>A small mlp run (1 epoch unless <paramref name="extra"/> says otherwise).</summary>
    private string[] Train(params string[] extra) =>
        [
            "train",
            "--model",
            "mlp",
            .. extra.Contains("--epochs") ? Array.Empty<string>() : ["--epochs", "1"],
            "--batch-size",
            "32",
            "--data",
            _dir,
            "--threads",
            "1",
            .. extra,
        ];

    private static JsonElement Json(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement;

    private static void AssertRefused((int Exit, string Stdout, string Stderr) r, params string[] mentions)
    {
        Assert.That(r.Exit, Is.EqualTo(2), r.Stdout + r.Stderr);
        foreach (var m in mentions)
            Assert.That(r.Stderr, Does.Contain(m));
        Assert.That(r.Stdout, Does.Not.Contain("epoch 1/"), "refused before training");
    }

    [Test]
    public void Resume_with_a_changed_setup_is_refused_naming_the_differences()
    {
        var first = TestSupport.RunCli(Train("--checkpoint-dir", Ckpt));
        Assert.That(first.Exit, Is.Zero, first.Stderr);
        AssertRefused(
            TestSupport.RunCli(Train("--checkpoint-dir", Ckpt, "--resume", "--lr", "0.1", "--optimizer", "adam")),
            "lr was 0.05, now 0.1",
            "optimizer was sgd, now adam"
        );
        AssertRefused(
            TestSupport.RunCli(Train("--checkpoint-dir", Ckpt, "--resume", "--epochs", "2")),
            "epochs was 1, now 2",
            "--allow-resume-change epochs"
        );
        var more = TestSupport.RunCli(
            Train(
                "--checkpoint-dir",
                Ckpt,
                "--resume",
                "--epochs",
                "2",
                "--allow-resume-change",
                "epochs",
                "--json",
                Path.Combine(_dir, "r.json")
            )
        );
        Assert.That(more.Exit, Is.Zero, more.Stderr);
        Assert.That(more.Stdout, Does.Contain("epochs 1 -> 2 (accepted)").And.Contain("resumed from"));
        Assert.That(
            Json(Path.Combine(_dir, "r.json")).GetProperty("per_epoch").GetArrayLength(),
            Is.EqualTo(1),
            "one more epoch"
        );
    }

    [Test]
    public void A_checkpoint_of_two_ranks_resumes_on_three_only_when_accepted_and_then_rescaled()
    {
        // Stop mid-epoch: 2 ranks × 32 per step, 4 steps = 256 of the 512 samples of epoch 1.
        var two = TestSupport.RunCli(
            [
                "launch",
                "--nproc-per-node",
                "2",
                "--",
                "hpcengine",
                .. Train("--epochs", "2", "--checkpoint-dir", Ckpt, "--max-steps", "4"),
            ],
            timeoutSeconds: 180
        );
        Assert.That(two.Exit, Is.Zero, two.Stderr);
        var refused = TestSupport.RunCli(
            [
                "launch",
                "--nproc-per-node",
                "3",
                "--",
                "hpcengine",
                .. Train("--epochs", "2", "--checkpoint-dir", Ckpt, "--resume"),
            ],
            timeoutSeconds: 180
        );
        Assert.That(refused.Exit, Is.EqualTo(2), refused.Stdout + refused.Stderr);
        Assert.That(refused.Stderr, Does.Contain("world-size was 2, now 3"));
        string json = Path.Combine(_dir, "three.json");
        var three = TestSupport.RunCli(
            [
                "launch",
                "--nproc-per-node",
                "3",
                "--",
                "hpcengine",
                .. Train(
                    "--epochs",
                    "2",
                    "--checkpoint-dir",
                    Ckpt,
                    "--resume",
                    "--allow-resume-change",
                    "world-size",
                    "--json",
                    json
                ),
            ],
            timeoutSeconds: 180
        );
        Assert.That(three.Exit, Is.Zero, three.Stdout + three.Stderr);
        // 3 ranks: 171 samples each, 6 batches of 32 per epoch; 256 seen = 2 batches of 96 (64 seen again); step 2 of
        // 12.
        Assert.That(
            three.Stdout,
            Does.Contain(
                "world size 2 -> 3 (accepted): 256 samples of epoch 1 were seen; continuing at batch 2 (64 of them "
                    + "again), the schedule at step 2 of 12"
            )
        );
        var r = Json(json);
        Assert.That(r.GetProperty("steps").GetInt64(), Is.EqualTo(12));
        Assert.That(
            r.GetProperty("final_test_accuracy").GetDouble(),
            Is.GreaterThan(0.5),
            "trained at a real learning rate, not the tail of a finished schedule"
        );
    }

    [Test]
    public void Resume_on_an_empty_directory_says_there_is_nothing_and_resume_if_exists_starts_fresh()
    {
        AssertRefused(
            TestSupport.RunCli(Train("--checkpoint-dir", Ckpt, "--resume")),
            "nothing to resume",
            "--resume-if-exists"
        );
        var fresh = TestSupport.RunCli(Train("--checkpoint-dir", Ckpt, "--resume-if-exists"));
        Assert.That(fresh.Exit, Is.Zero, fresh.Stderr);
        Assert.That(fresh.Stdout, Does.Contain("starting fresh"));
        var again = TestSupport.RunCli(Train("--checkpoint-dir", Ckpt, "--resume-if-exists"));
        Assert.That(again.Exit, Is.Zero, again.Stderr);
        Assert.That(again.Stdout, Does.Contain("resumed from"));
    }

    [Test]
    public void Final_accuracy_is_measured_when_stopping_at_max_steps_and_when_resuming_a_finished_run()
    {
        string json = Path.Combine(_dir, "r.json"),
            pred = Path.Combine(_dir, "p.json");
        var r = TestSupport.RunCli(Train("--checkpoint-dir", Ckpt, "--max-steps", "3", "--json", json));
        Assert.That(r.Exit, Is.Zero, r.Stderr);
        var p = TestSupport.RunCli(["predict", "--checkpoint", Ckpt, "--data", _dir, "--json", pred]);
        Assert.That(p.Exit, Is.Zero, p.Stderr);
        double predicted = Json(pred).GetProperty("test_accuracy").GetDouble();
        Assert.That(
            Json(json).GetProperty("final_test_accuracy").GetDouble(),
            Is.EqualTo(predicted),
            "the checkpoint's accuracy, not 0.0"
        );
        Assert.That(Json(json).GetProperty("best_test_accuracy").GetDouble(), Is.EqualTo(predicted));

        var done = TestSupport.RunCli(Train("--checkpoint-dir", Path.Combine(_dir, "done")));
        Assert.That(done.Exit, Is.Zero, done.Stderr);
        var again = TestSupport.RunCli(
            Train("--checkpoint-dir", Path.Combine(_dir, "done"), "--resume", "--json", json)
        );
        Assert.That(again.Exit, Is.Zero, again.Stderr);
        Assert.That(
            done.Stdout,
            Does.Contain($"final test accuracy {Json(json).GetProperty("final_test_accuracy").GetDouble():F4}"),
            "the finished run's accuracy, evaluated again"
        );
    }

    [Test]
    public void Save_every_checkpoints_mid_epoch_and_resume_from_reads_another_directory()
    {
        var r = TestSupport.RunCli(Train("--checkpoint-dir", Ckpt, "--save-every", "3", "--max-steps", "7"));
        Assert.That(r.Exit, Is.Zero, r.Stderr);
        var models = Directory.GetFiles(Ckpt, "model-*.safetensors").Select(Path.GetFileName).Order().ToArray();
        Assert.That(
            models,
            Is.EqualTo(new[] { "model-000000006.safetensors", "model-000000007.safetensors" }),
            "saved at 3, 6 and the stop at 7 (the last two kept)"
        );
        string other = Path.Combine(_dir, "other");
        var resumed = TestSupport.RunCli(Train("--resume-from", Ckpt, "--checkpoint-dir", other));
        Assert.That(resumed.Exit, Is.Zero, resumed.Stderr);
        Assert.That(resumed.Stdout, Does.Contain($"resumed from {Ckpt} at epoch 1, batch 7, step 7"));
        Assert.That(File.Exists(Path.Combine(other, "checkpoint.json")), Is.True);
    }

    [Test]
    public void A_diverging_run_stops_at_the_first_non_finite_loss_unless_allowed()
    {
        string json = Path.Combine(_dir, "r.json");
        var r = TestSupport.RunCli(Train("--lr", "1e30", "--json", json));
        Assert.That(r.Exit, Is.Not.Zero);
        Assert.That(
            r.Stderr,
            Does.Contain("training diverged").And.Contain("at step").And.Contain("--allow-divergence")
        );
        Assert.That(Json(json).GetProperty("status").GetString(), Is.EqualTo("diverged"));
        var allowed = TestSupport.RunCli(Train("--lr", "1e30", "--json", json, "--allow-divergence"));
        Assert.That(allowed.Exit, Is.Zero, allowed.Stderr);
        Assert.That(Json(json).GetProperty("diverged").GetBoolean(), Is.True);
        Assert.That(Json(json).GetProperty("steps").GetInt64(), Is.EqualTo(16), "ran to the end");
    }

    [Test]
    public void Output_paths_are_checked_before_training()
    {
        AssertRefused(TestSupport.RunCli(Train("--json", "/nonexistent-dir/r.json")), "--json", "/nonexistent-dir");
        File.WriteAllText(Path.Combine(_dir, "afile"), "x");
        AssertRefused(
            TestSupport.RunCli(Train("--trace-dir", Path.Combine(_dir, "afile"))),
            "--trace-dir",
            "is a file"
        );
        AssertRefused(
            TestSupport.RunCli(Train("--checkpoint-dir", Path.Combine(_dir, "afile", "sub"))),
            "--checkpoint-dir"
        );
    }

    [Test]
    public void Leftover_temporary_files_are_cleaned_and_a_pointer_outside_the_directory_is_refused()
    {
        Directory.CreateDirectory(Ckpt);
        string leftover = Path.Combine(Ckpt, ".model-000000001.safetensors.123.abc.tmp");
        File.WriteAllText(leftover, "half a save");
        var r = TestSupport.RunCli(Train("--checkpoint-dir", Ckpt));
        Assert.That(r.Exit, Is.Zero, r.Stderr);
        Assert.That(File.Exists(leftover), Is.False, "the interrupted save's file is gone");
        string pointer = Path.Combine(Ckpt, "checkpoint.json");
        File.WriteAllText(
            pointer,
            File.ReadAllText(pointer).Replace("\"model-", "\"../../model-", StringComparison.Ordinal)
        );
        AssertRefused(
            TestSupport.RunCli(Train("--checkpoint-dir", Ckpt, "--resume")),
            "not a file of the checkpoint directory"
        );
    }

    [Test]
    public void The_checkpoint_carries_the_input_normalisation()
    {
        var r = TestSupport.RunCli(Train("--checkpoint-dir", Ckpt));
        Assert.That(r.Exit, Is.Zero, r.Stderr);
        var model = Directory.GetFiles(Ckpt, "model-*.safetensors").Single();
        using var f = HpcEngine.IO.Safetensors.Open(model);
        Assert.That(f.Metadata["hpcengine.input_mean"], Is.EqualTo("0.286"));
        Assert.That(f.Metadata["hpcengine.input_std"], Is.EqualTo("0.353"));
        Assert.That(
            File.ReadAllText(Path.Combine(Ckpt, "checkpoint.json")),
            Does.Contain("\"input_normalization\":{\"mean\":[0.286],\"std\":[0.353]}")
        );
    }

    [TestCase("--weight-decay", "-1")]
    [TestCase("--warmup-steps", "-1")]
    [TestCase("--clip-norm", "-1")]
    [TestCase("--threads", "0")]
    [TestCase("--lr", "Infinity")]
    [TestCase("--momentum", "1.5")]
    [TestCase("--save-every", "-2")]
    [TestCase("--timeout", "0")]
    public void Numeric_options_are_range_checked_naming_the_flag(string flag, string value) =>
        AssertRefused(TestSupport.RunCli(Train(flag, value)), flag);

    [TestCase("--strategy", "zero1")]
    [TestCase("--compress", "fp16")]
    public void Options_without_effect_in_one_process_are_errors(string flag, string value) =>
        AssertRefused(TestSupport.RunCli(Train(flag, value, "--no-distributed")), "need several ranks");

    [Test]
    public void A_straggler_that_does_not_exist_is_an_error()
    {
        var r = TestSupport.RunCli(
            ["launch", "--nproc-per-node", "2", "--", "hpcengine", .. Train()],
            env: new() { ["HPCENGINE_STRAGGLER"] = "5:1.5" },
            timeoutSeconds: 120
        );
        Assert.That(r.Exit, Is.EqualTo(2), r.Stderr);
        Assert.That(r.Stderr, Does.Contain("names rank 5, but the job has 2 rank(s)"));
        var bench = TestSupport.RunCli([
            "bench",
            "strategies",
            "--workers",
            "2",
            "--strategies",
            "sync",
            "--compress",
            "none",
            "--straggler",
            "3:2",
            "--out",
            Path.Combine(_dir, "b"),
        ]);
        Assert.That(bench.Exit, Is.EqualTo(2), bench.Stderr);
        Assert.That(bench.Stderr, Does.Contain("names rank 3"));
    }

    [Test]
    public void Launch_checks_its_port()
    {
        var r = TestSupport.RunCli(["launch", "--master-port", "70000", "--", "true"]);
        Assert.That(r.Exit, Is.EqualTo(2));
        Assert.That(r.Stderr, Does.Contain("--master-port must be in 0..65535"));
    }

    [Test]
    public void Help_and_version_go_to_stdout_and_exit_zero_and_a_typo_gets_a_suggestion()
    {
        var help = TestSupport.RunCli(["train", "--help"]);
        Assert.That(help.Exit, Is.Zero);
        Assert.That(help.Stdout, Does.Contain("--checkpoint-dir").And.Contain("--resume-if-exists"));
        var version = TestSupport.RunCli(["--version"]);
        Assert.That(version.Exit, Is.Zero);
        Assert.That(version.Stdout, Does.StartWith("hpcengine "));
        var top = TestSupport.RunCli(["--help"]);
        Assert.That(top.Exit, Is.Zero);
        Assert.That(top.Stdout, Does.Contain("launch"));
        var typo = TestSupport.RunCli(["train", "--epocs", "3"]);
        Assert.That(typo.Exit, Is.EqualTo(2));
        Assert.That(
            typo.Stderr.Trim(),
            Is.EqualTo(
                "hpcengine: error: unknown option '--epocs'; did you mean '--epochs'? (hpcengine train --help lists "
                    + "its options)"
            )
        );
    }

    [Test]
    public void Events_are_written_as_json_lines_another_process_can_follow()
    {
        string events = Path.Combine(_dir, "events.jsonl"),
            json = Path.Combine(_dir, "r.json");
        var r = TestSupport.RunCli(Train("--epochs", "2", "--events", events, "--json", json, "--eval-every", "5"));
        Assert.That(r.Exit, Is.Zero, r.Stderr);
        var parsed = File.ReadAllLines(events).Select(HpcEngine.Training.JsonLinesObserver.Read).ToList();
        Assert.That(parsed, Has.None.Null, "every line is an event");
        var result = Json(json);
        Assert.That(
            parsed.OfType<HpcEngine.Training.StepEvent>().Select(s => s.Loss),
            Is.EqualTo(result.GetProperty("step_losses").EnumerateArray().Select(x => x.GetDouble())),
            "a step event per optimizer step"
        );
        var epochs = parsed.OfType<HpcEngine.Training.EpochEvent>().ToList();
        Assert.That(epochs.Select(e => e.Result.Epoch), Is.EqualTo(new[] { 1, 2 }));
        Assert.That(epochs[^1].Result.TestAccuracy, Is.EqualTo(result.GetProperty("final_test_accuracy").GetDouble()));
        Assert.That(
            parsed.OfType<HpcEngine.Training.EvaluationEvent>().Count(),
            Is.EqualTo(result.GetProperty("curve").GetArrayLength())
        );
    }

    [Test]
    public void Each_bench_workload_has_its_own_help_and_refuses_options_it_would_ignore()
    {
        var help = TestSupport.RunCli(["bench", "collectives", "--help"]);
        Assert.That(help.Exit, Is.Zero);
        Assert.That(
            help.Stdout,
            Does.Contain("--op")
                .And.Contain("--min-bytes")
                .And.Not.Contain("--price-per-hour")
                .And.Not.Contain("--mode")
        );
        var strategies = TestSupport.RunCli(["bench", "strategies", "--help"]);
        Assert.That(
            strategies.Stdout,
            Does.Contain("--price-per-hour").And.Contain("--currency").And.Not.Contain("--min-bytes")
        );
        var wrong = TestSupport.RunCli(["bench", "gemm", "--op", "allreduce"]);
        Assert.That(wrong.Exit, Is.EqualTo(2));
        Assert.That(wrong.Stderr.Trim(), Does.StartWith("hpcengine: error: --op does not apply to bench gemm"));
        var overview = TestSupport.RunCli(["bench", "--help"]);
        Assert.That(overview.Exit, Is.Zero);
        Assert.That(overview.Stdout, Does.Contain("collectives:").And.Contain("strategies:"));
    }

    [Test]
    public void A_failed_data_parallel_run_still_writes_its_json_and_traces()
    {
        string big = TestSupport.TempDir("hpc-life-big-");
        try
        {
            TestSupport.WriteTinyFashionMnist(big, 4096, 64);
            string json = Path.Combine(big, "r.json"),
                traces = Path.Combine(big, "traces");
            int port = TestSupport.FreePort();
            var ranks = Enumerable
                .Range(0, 2)
                .Select(r => new TestSupport.CliProcess(
                    [
                        "train",
                        "--model",
                        "mlp",
                        "--epochs",
                        "200",
                        "--batch-size",
                        "32",
                        "--data",
                        big,
                        "--json",
                        json,
                        "--trace-dir",
                        traces,
                    ],
                    new()
                    {
                        ["RANK"] = $"{r}",
                        ["WORLD_SIZE"] = "2",
                        ["MASTER_ADDR"] = "127.0.0.1",
                        ["MASTER_PORT"] = $"{port}",
                    }
                ))
                .ToList();
            try
            {
                var deadline = DateTime.UtcNow.AddSeconds(120);
                while (!ranks[0].Stdout.Contains("test accuracy", StringComparison.Ordinal))
                {
                    if (DateTime.UtcNow > deadline || ranks.Any(p => p.Process.HasExited))
                        Assert.Fail("training did not start: " + ranks[0].Stderr + ranks[1].Stderr);
                    Thread.Sleep(50);
                }
                Process.Start("kill", $"-9 {ranks[1].Process.Id}")!.WaitForExit();
                Assert.That(ranks[0].WaitForExit(30_000), Is.True, "rank 0 did not fail");
                Assert.That(ranks[0].Process.ExitCode, Is.Not.Zero);
                var j = Json(json);
                Assert.That(j.GetProperty("status").GetString(), Is.EqualTo("failed"));
                Assert.That(j.GetProperty("error").GetString(), Does.Contain("rank 1"));
                Assert.That(
                    File.Exists(Path.Combine(traces, "trace-rank0.json")),
                    Is.True,
                    "the failed run's trace was written"
                );
            }
            finally
            {
                foreach (var p in ranks)
                    p.Dispose();
            }
        }
        finally
        {
            Directory.Delete(big, true);
        }
    }
}
