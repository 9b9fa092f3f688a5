using System.Text.Json;

namespace HpcEngine.Tests.Distributed;

/// <summary>Elastic training as users run it: <c>hpcengine launch --elastic</c> with worker processes, a fault
/// injected for real (SIGKILL, SIGSTOP), the survivors going on; the results say what happened.</summary>
[TestFixture, Category("MultiProcess"), NonParallelizable]
public class ElasticTrainingTests
{
    private string _dir = "";

    [OneTimeSetUp]
    public void Data()
    {
        _dir = TestSupport.TempDir("hpc-elastic-");
        TestSupport.WriteTinyFashionMnist(_dir, 512, 128);
    }

    [OneTimeTearDown]
    public void Clean() => Directory.Delete(_dir, true);

    private (int Exit, string Out, JsonElement? Json) Train(
        bool elastic,
        string? faults,
        int ranks = 3,
        params string[] extra
    )
    {
        string json = Path.Combine(_dir, $"r-{Guid.NewGuid():N}.json");
        var args = new List<string>
        {
            "launch",
            "--nproc-per-node",
            ranks.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        if (elastic)
            args.Add("--elastic");
        args.AddRange(["--", "hpcengine", "train", "--model", "mlp", "--epochs", "2", "--batch-size", "32"]);
        args.AddRange(["--data", _dir, "--threads", "1", "--seed", "4", "--json", json]);
        if (faults != null)
            args.AddRange(["--fault-plan", faults]);
        args.AddRange(extra);
        var r = TestSupport.RunCli(args, timeoutSeconds: 180);
        JsonElement? j = File.Exists(json) ? JsonDocument.Parse(File.ReadAllText(json)).RootElement.Clone() : null;
        return (r.Exit, r.Stdout + r.Stderr, j);
    }

    private static void AssertRecovered(JsonElement j, int lostMember, int atStep)
    {
        Assert.That(j.GetProperty("status").GetString(), Is.EqualTo("completed"));
        var events = j.GetProperty("membership").EnumerateArray().ToArray();
        Assert.That(events, Has.Length.EqualTo(1));
        Assert.That(events[0].GetProperty("kind").GetString(), Is.EqualTo("lost"));
        Assert.That(events[0].GetProperty("rank").GetInt32(), Is.EqualTo(lostMember));
        Assert.That(
            events[0].GetProperty("step").GetInt64(),
            Is.EqualTo(atStep),
            "the step the loss interrupted is redone"
        );
        Assert.That(events[0].GetProperty("world_size_after").GetInt32(), Is.EqualTo(2));
        Assert.That(j.GetProperty("workers").GetInt32(), Is.EqualTo(2));
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True);
        // 512 samples per epoch: 3 steps of 3 × 32, then the rest (224) over 2 ranks, then a whole epoch at 2 ranks.
        Assert.That(j.GetProperty("samples_seen").GetInt64(), Is.EqualTo(j.GetProperty("samples_expected").GetInt64()));
        Assert.That(j.GetProperty("samples_expected").GetInt64(), Is.EqualTo(1024));
        Assert.That(j.GetProperty("steps").GetInt64(), Is.EqualTo(3 + 4 + 8));
    }

    [Test]
    public void A_killed_worker_is_dropped_and_the_others_finish_with_every_sample_seen()
    {
        string log = Path.Combine(_dir, "metrics.csv");
        var (exit, output, json) = Train(true, "kill:rank=2,step=3", 3, "--metrics-log", log);
        Assert.That(exit, Is.Zero, output);
        Assert.That(output, Does.Contain("rank 2 exited with code 137; elastic job: the others go on without it"));
        // The new generation reaches the observers: the metrics log has its row, world size 2, at the redone step.
        Assert.That(
            File.ReadAllLines(log).Where(l => l.EndsWith(",2", StringComparison.Ordinal)).Select(l => l.Split(',')[0]),
            Is.EqualTo(new[] { "3" })
        );
        Assert.That(output, Does.Contain("elastic: member 2 lost; generation 1 has 2 rank(s)"));
        AssertRecovered(json!.Value, 2, 3);
    }

    [Test]
    public void Losing_rank_0_loses_neither_the_store_nor_the_results()
    {
        // The launcher hosts the store; member 1 becomes rank 0, evaluates and writes the results.
        var (exit, output, json) = Train(true, "kill:rank=0,step=3");
        Assert.That(exit, Is.Zero, output);
        Assert.That(json, Is.Not.Null, "the new rank 0 wrote the results: " + output);
        AssertRecovered(json!.Value, 0, 3);
        Assert.That(json.Value.GetProperty("final_test_accuracy").GetDouble(), Is.GreaterThan(0.1));
    }

    [Test]
    public void A_frozen_worker_is_dropped_after_2_seconds_of_silence_and_fenced_when_it_wakes()
    {
        var (exit, output, json) = Train(true, "stop:rank=1,step=3,seconds=5");
        Assert.That(exit, Is.Zero, output);
        AssertRecovered(json!.Value, 1, 3);
        Assert.That(
            output,
            Does.Contain("generation 1 was formed without member 1"),
            "the woken worker is told and exits"
        );
        Assert.That(output, Does.Contain("rank 1 exited with code 1"));
    }

    [Test]
    public void A_worker_lost_at_the_end_of_an_epoch_is_recovered_in_the_evaluation()
    {
        // 512 samples over 3 ranks of 32: 6 steps an epoch; killed after step 6, rank 2's loss surfaces in the
        // barrier of rank 0's evaluation, not in a step.
        var (exit, output, json) = Train(true, "kill:rank=2,step=6");
        Assert.That(exit, Is.Zero, output);
        var j = json!.Value;
        Assert.That(j.GetProperty("status").GetString(), Is.EqualTo("completed"));
        var e = j.GetProperty("membership").EnumerateArray().Single();
        Assert.That((e.GetProperty("rank").GetInt32(), e.GetProperty("step").GetInt64()), Is.EqualTo((2, 6L)));
        Assert.That(j.GetProperty("steps").GetInt64(), Is.EqualTo(6 + 8), "epoch 2 whole, at 2 ranks");
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True);
        long padding = j.GetProperty("samples_seen").GetInt64() - j.GetProperty("samples_expected").GetInt64();
        Assert.That(
            padding,
            Is.EqualTo(1),
            "epoch 1's 512 samples over 3 ranks pad one sample, as DistributedSampler does"
        );
        Assert.That(j.GetProperty("per_epoch").GetArrayLength(), Is.EqualTo(2));
    }

    [Test]
    public void A_preempted_worker_finishes_its_step_leaves_and_exits_0()
    {
        // SIGTERM (a spot reclaim notice) at step 3: the worker leaves at a step boundary — the signal is handled
        // asynchronously, so at step 3 or, on a loaded machine, a few steps later; never before it — and the others go
        // on without waiting for a timeout.
        var (exit, output, json) = Train(true, "term:rank=1,step=3");
        Assert.That(exit, Is.Zero, output);
        var left = System.Text.RegularExpressions.Regex.Match(output, @"member 1 left the job after step (\d+)");
        Assert.That(left.Success, Is.True, output);
        Assert.That(int.Parse(left.Groups[1].Value), Is.GreaterThanOrEqualTo(3), "it leaves after the signal's step");
        Assert.That(output, Does.Not.Contain("rank 1 exited with code"), "it exits 0");
        var j = json!.Value;
        var e = j.GetProperty("membership").EnumerateArray().Single();
        Assert.That(e.GetProperty("kind").GetString(), Is.EqualTo("left"));
        Assert.That(e.GetProperty("rank").GetInt32(), Is.EqualTo(1));
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True);
        Assert.That(j.GetProperty("samples_seen").GetInt64(), Is.EqualTo(j.GetProperty("samples_expected").GetInt64()));
    }

    [Test]
    public void Under_ssp_a_preempted_worker_leaves_at_the_next_commit_point_and_nothing_is_redone()
    {
        // SIGTERM at step 3, commit points every 4 steps: the worker leaves at a commit point (step 4, or later on a
        // loaded machine), where its shard's copy is on the next rank; the others take it from there and go on from
        // that very step.
        var (exit, output, json) = Train(
            true,
            "term:rank=1,step=3",
            3,
            "--strategy",
            "ssp:1",
            "--elastic-commit-steps",
            "4"
        );
        Assert.That(exit, Is.Zero, output);
        var left = System.Text.RegularExpressions.Regex.Match(output, @"member 1 left the job after step (\d+)");
        Assert.That(left.Success, Is.True, output);
        int at = int.Parse(left.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(
            at % 4 == 0 || at == 6,
            Is.True,
            $"left after step {at}: a commit point (4, 8, or epoch 1's end, 6)"
        );
        var j = json!.Value;
        var e = j.GetProperty("membership").EnumerateArray().Single();
        Assert.That((e.GetProperty("kind").GetString(), e.GetProperty("rank").GetInt32()), Is.EqualTo(("left", 1)));
        Assert.That(e.GetProperty("step").GetInt64(), Is.EqualTo(at), "the survivors go on from where it left");
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True);
        Assert.That(j.GetProperty("samples_seen").GetInt64(), Is.EqualTo(j.GetProperty("samples_expected").GetInt64()));
    }

    [TestCase("sync")]
    [TestCase("ssp:2")]
    public void A_killed_worker_is_replaced_by_the_launcher_and_the_replacement_joins_the_running_job(string strategy)
    {
        // The embedded 10,000 images, 8 epochs: long enough (seconds) for the replacement process to start, register and
        // be admitted at a join check (every 5 steps), which then receives rank 0's state over the group.
        string json = Path.Combine(_dir, $"j-{Guid.NewGuid():N}.json");
        var r = TestSupport.RunCli(
            [
                "launch",
                "--elastic",
                "--max-restarts",
                "1",
                "--nproc-per-node",
                "3",
                "--",
                "hpcengine",
                "train",
                "--model",
                "mlp",
                "--epochs",
                "8",
                "--threads",
                "1",
                "--fault-plan",
                "kill:rank=2,step=4",
                "--json",
                json,
                "--strategy",
                strategy,
                "--elastic-commit-steps",
                "5", // ssp admits joiners at its commit points
            ],
            timeoutSeconds: 240
        );
        Assert.That(r.Exit, Is.Zero, r.Stdout + r.Stderr);
        Assert.That(r.Stderr, Does.Contain("started a replacement for rank 2"));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var j = doc.RootElement;
        var events = j.GetProperty("membership")
            .EnumerateArray()
            .Select(e =>
                (
                    Kind: e.GetProperty("kind").GetString(),
                    Rank: e.GetProperty("rank").GetInt32(),
                    World: e.GetProperty("world_size_after").GetInt32()
                )
            )
            .ToArray();
        Assert.That(events, Is.EqualTo(new[] { ("lost", 2, 2), ("joined", 3, 3) }), r.Stdout);
        Assert.That(j.GetProperty("workers").GetInt32(), Is.EqualTo(3));
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True, "the joiner holds the same parameters");
        long extra = j.GetProperty("samples_seen").GetInt64() - j.GetProperty("samples_expected").GetInt64();
        Assert.That(extra, Is.InRange(0, 2 * 8), "only DistributedSampler padding (at most 2 per epoch at 3 ranks)");
    }

    [Test]
    public void Keep_global_keeps_the_global_batch_and_keep_local_scales_the_learning_rate()
    {
        // 3 ranks of 32, one lost after step 3: keep-global trains on at 2 × 48 (the epoch's rest, 224 samples, is 3
        // steps; epoch 2, 256 per rank, is 6); keep-local at 2 × 32 with the rate × 2/3 (4 steps, then 8).
        var global = Train(true, "kill:rank=2,step=3", 3, "--elastic-batch", "keep-global");
        Assert.That(global.Exit, Is.Zero, global.Out);
        Assert.That(global.Out, Does.Contain("(batch 48 per worker, keep-global)"));
        Assert.That(global.Json!.Value.GetProperty("steps").GetInt64(), Is.EqualTo(3 + 3 + 6));
        Assert.That(
            global.Json.Value.GetProperty("samples_seen").GetInt64(),
            Is.EqualTo(global.Json.Value.GetProperty("samples_expected").GetInt64())
        );
        var local = Train(true, "kill:rank=2,step=3");
        Assert.That(local.Out, Does.Contain("(lr × 0.667, keep-local)"));
        Assert.That(local.Json!.Value.GetProperty("steps").GetInt64(), Is.EqualTo(3 + 4 + 8));
    }

    [Test]
    public void Without_faults_an_elastic_run_trains_exactly_as_a_plain_one()
    {
        var plain = Train(false, null);
        var elastic = Train(true, null);
        Assert.That(plain.Exit, Is.Zero, plain.Out);
        Assert.That(elastic.Exit, Is.Zero, elastic.Out);
        double[] Losses(JsonElement j) =>
            j.GetProperty("step_losses").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.That(Losses(elastic.Json!.Value), Is.EqualTo(Losses(plain.Json!.Value)));
        Assert.That(elastic.Json.Value.GetProperty("membership").GetArrayLength(), Is.Zero);
        Assert.That(
            plain.Json.Value.TryGetProperty("membership", out _),
            Is.False,
            "only elastic runs report membership"
        );
    }

    [Test]
    public void Elastic_with_a_strategy_it_cannot_recover_is_refused_naming_the_setting()
    {
        var r = TestSupport.RunCli(["train", "--elastic", "--strategy", "ssp:2:1", "--epochs", "1", "--data", _dir]);
        Assert.That(r.Exit, Is.Not.Zero);
        Assert.That(
            r.Stderr,
            Does.Contain(
                "--elastic recovers sync, zero1, localsgd, diloco and ssp with servers on the workers, not ssp:2:1"
            )
        );
        var steps = TestSupport.RunCli([
            "train",
            "--elastic",
            "--strategy",
            "ssp:2",
            "--elastic-commit-steps",
            "0",
            "--data",
            _dir,
        ]);
        Assert.That(steps.Stderr, Does.Contain("--elastic-commit-steps must be 1 or more, got 0"));
    }

    private static double[] Losses(JsonElement j) =>
        j.GetProperty("step_losses").EnumerateArray().Select(x => x.GetDouble()).ToArray();

    [Test]
    public void Under_ssp_0_committing_every_step_a_lost_shard_is_recovered_from_its_copy_as_sync_recovers()
    {
        // ssp:0 is bulk-synchronous (it trains as sync does); with a commit point after every step, a loss goes back
        // to the last step exactly as sync's does. Rank 1's shard (its third of the weights and of Adam's moments) is
        // rebuilt from rank 2's copy: had it been lost, that third would move differently at once.
        string plan = "kill:rank=1,step=3";
        var sync = Train(true, plan, 3, "--strategy", "sync", "--optimizer", "adam");
        var ssp = Train(true, plan, 3, "--strategy", "ssp:0", "--elastic-commit-steps", "1", "--optimizer", "adam");
        Assert.That(sync.Exit, Is.Zero, sync.Out);
        Assert.That(ssp.Exit, Is.Zero, ssp.Out);
        AssertRecovered(ssp.Json!.Value, 1, 3);
        Assert.That(Losses(ssp.Json.Value), Is.EqualTo(Losses(sync.Json!.Value)).Within(1e-5));
    }

    [Test]
    public void Under_ssp_the_survivors_redo_the_steps_since_the_last_commit_point()
    {
        // 3 ranks × 32, commit points every 4 steps: rank 2 dies after step 3, so the commit point of step 4 never
        // completes; the survivors go back to the start (step 0) and train the epoch at 2 ranks (8 steps), then epoch 2.
        var (exit, output, json) = Train(
            true,
            "kill:rank=2,step=3",
            3,
            "--strategy",
            "ssp:2",
            "--elastic-commit-steps",
            "4"
        );
        Assert.That(exit, Is.Zero, output);
        var j = json!.Value;
        Assert.That(j.GetProperty("status").GetString(), Is.EqualTo("completed"));
        var e = j.GetProperty("membership").EnumerateArray().Single();
        Assert.That((e.GetProperty("kind").GetString(), e.GetProperty("rank").GetInt32()), Is.EqualTo(("lost", 2)));
        Assert.That(e.GetProperty("step").GetInt64(), Is.Zero, "rolled back to the last commit point");
        Assert.That(
            e.GetProperty("dropped").EnumerateArray().Select(d => d.GetString()),
            Is.EqualTo(new[] { "the steps since the last commit point (every survivor redoes its own)" })
        );
        Assert.That(j.GetProperty("steps").GetInt64(), Is.EqualTo(8 + 8));
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True, "every epoch ends at a commit point");
        Assert.That(j.GetProperty("samples_seen").GetInt64(), Is.EqualTo(1024), "none lost, none twice");
        Assert.That(j.GetProperty("samples_expected").GetInt64(), Is.EqualTo(1024));
    }

    [Test]
    public void Under_ssp_the_last_survivor_takes_every_shard_and_trains_alone_as_sync_would()
    {
        // 2 ranks: rank 1 dies after step 3; rank 0 takes rank 1's shard (weights and Adam's moments) from its copy into
        // a plain optimizer over the whole model and trains the rest alone (10 steps), then epoch 2 (16): step for step
        // what sync does through the same loss.
        string plan = "kill:rank=1,step=3";
        var sync = Train(true, plan, 2, "--strategy", "sync", "--optimizer", "adam");
        var ssp = Train(true, plan, 2, "--strategy", "ssp:0", "--elastic-commit-steps", "1", "--optimizer", "adam");
        Assert.That(sync.Exit, Is.Zero, sync.Out);
        Assert.That(ssp.Exit, Is.Zero, ssp.Out);
        var e = ssp.Json!.Value.GetProperty("membership").EnumerateArray().Single();
        Assert.That(
            (
                e.GetProperty("rank").GetInt32(),
                e.GetProperty("step").GetInt64(),
                e.GetProperty("world_size_after").GetInt32()
            ),
            Is.EqualTo((1, 3L, 1))
        );
        Assert.That(ssp.Json.Value.GetProperty("steps").GetInt64(), Is.EqualTo(3 + 10 + 16));
        Assert.That(ssp.Json.Value.GetProperty("samples_seen").GetInt64(), Is.EqualTo(1024));
        Assert.That(Losses(ssp.Json.Value), Is.EqualTo(Losses(sync.Json!.Value)).Within(1e-5));
    }

    [TestCase(0)]
    [TestCase(2)]
    public void Under_zero1_a_lost_ranks_optimizer_shard_is_recovered_from_its_neighbours_copy(int lost)
    {
        // Adam is elementwise, so zero1 trains as sync does, step for step, through the loss and the re-partition of
        // the shards over 2 ranks: a shard whose moments were lost would move its third of the parameters differently
        // at once. Rank 2's copy is on rank 0 (the ring wraps).
        string plan = $"kill:rank={lost},step=3";
        var sync = Train(true, plan, 3, "--strategy", "sync", "--optimizer", "adam");
        var zero1 = Train(true, plan, 3, "--strategy", "zero1", "--optimizer", "adam");
        Assert.That(sync.Exit, Is.Zero, sync.Out);
        Assert.That(zero1.Exit, Is.Zero, zero1.Out);
        AssertRecovered(zero1.Json!.Value, lost, 3);
        Assert.That(Losses(zero1.Json.Value), Is.EqualTo(Losses(sync.Json!.Value)).Within(1e-5));
        Assert.That(zero1.Json.Value.GetProperty("membership")[0].TryGetProperty("dropped", out _), Is.False);
    }

    [TestCase("localsgd:4")]
    [TestCase("diloco:4")]
    public void Under_local_sgd_the_survivors_redo_the_window_from_the_last_outer_step(string strategy)
    {
        // 3 ranks × 32: rank 2 dies after step 3; the survivors meet it missing at the outer step of step 4, go back to
        // the last outer step (the start: step 0) and redo the epoch at 2 ranks (8 steps), then epoch 2 (8).
        var (exit, output, json) = Train(true, "kill:rank=2,step=3", 3, "--strategy", strategy);
        Assert.That(exit, Is.Zero, output);
        var j = json!.Value;
        Assert.That(j.GetProperty("status").GetString(), Is.EqualTo("completed"));
        var e = j.GetProperty("membership").EnumerateArray().Single();
        Assert.That((e.GetProperty("kind").GetString(), e.GetProperty("rank").GetInt32()), Is.EqualTo(("lost", 2)));
        Assert.That(e.GetProperty("step").GetInt64(), Is.Zero, "rolled back to the last outer step");
        Assert.That(
            e.GetProperty("dropped").EnumerateArray().Select(d => d.GetString()),
            Is.EqualTo(new[] { "its local steps since the last outer step" })
        );
        Assert.That(j.GetProperty("steps").GetInt64(), Is.EqualTo(8 + 8));
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True, "every epoch ends with an outer step");
        Assert.That(j.GetProperty("samples_seen").GetInt64(), Is.EqualTo(1024), "none lost, none twice");
        Assert.That(j.GetProperty("samples_expected").GetInt64(), Is.EqualTo(1024));
    }

    [TestCase("sync", "powersgd:2")]
    [TestCase("sync", "topk:0.1")]
    [TestCase("diloco:2", "sign")]
    public void With_a_codec_the_lost_members_error_feedback_state_is_dropped_and_recorded(
        string strategy,
        string codec
    )
    {
        var (exit, output, json) = Train(true, "kill:rank=1,step=3", 3, "--strategy", strategy, "--compress", codec);
        Assert.That(exit, Is.Zero, output);
        var j = json!.Value;
        var e = j.GetProperty("membership").EnumerateArray().Single();
        Assert.That(e.GetProperty("rank").GetInt32(), Is.EqualTo(1));
        Assert.That(
            e.GetProperty("dropped").EnumerateArray().Select(d => d.GetString()),
            Has.Some.EqualTo($"its {codec} error-feedback state")
        );
        Assert.That(output, Does.Contain("dropped with the lost: its " + codec));
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True);
        Assert.That(j.GetProperty("samples_seen").GetInt64(), Is.EqualTo(j.GetProperty("samples_expected").GetInt64()));
    }

    /// <summary>zero1 over 4 ranks, 3 epochs of 4 steps, a checkpoint each epoch; ranks 1 and 2 killed after step 6
    /// (epoch 2): rank 1's optimizer shard is gone with it and its copy with rank 2.</summary>
    private (int Exit, string Stdout, string Stderr) LoseABuddyPair(int maxRestarts, string json) =>
        TestSupport.RunCli(
            [
                "launch",
                "--elastic",
                "--max-restarts",
                maxRestarts.ToString(System.Globalization.CultureInfo.InvariantCulture),
                "--nproc-per-node",
                "4",
                "--",
                "hpcengine",
                "train",
                "--model",
                "mlp",
                "--epochs",
                "3",
                "--batch-size",
                "32",
                "--strategy",
                "zero1",
                "--data",
                _dir,
                "--threads",
                "1",
                "--checkpoint-dir",
                Path.Combine(_dir, $"ck-{Guid.NewGuid():N}"),
                "--resume-if-exists",
                "--fault-plan",
                "kill:rank=1,step=6;kill:rank=2,step=6",
                "--json",
                json,
            ],
            timeoutSeconds: 240
        );

    [Test]
    public void Losing_a_shard_and_its_copy_falls_back_to_the_last_checkpoint_with_every_worker_restarted()
    {
        string json = Path.Combine(_dir, $"f-{Guid.NewGuid():N}.json");
        var r = LoseABuddyPair(1, json);
        Assert.That(r.Exit, Is.Zero, r.Stdout + r.Stderr);
        Assert.That(
            r.Stderr,
            Does.Contain("the optimizer shard of rank 1 of 4 is lost with it, and its copy with rank 2")
        );
        Assert.That(r.Stderr, Does.Contain("falling back to the last checkpoint, restarting every worker (1/1)"));
        Assert.That(
            r.Stderr,
            Does.Contain("fault plan: not applied on restart 1"),
            "the restarted job meets no faults"
        );
        Assert.That(
            r.Stdout + r.Stderr,
            Does.Contain("at epoch 2, batch 0, step 4"),
            "resumed from epoch 1's checkpoint"
        );
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var j = doc.RootElement;
        Assert.That(j.GetProperty("status").GetString(), Is.EqualTo("completed"));
        Assert.That(j.GetProperty("workers").GetInt32(), Is.EqualTo(4), "the whole job restarted at full size");
        Assert.That(j.GetProperty("steps").GetInt64(), Is.EqualTo(12));
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True);
    }

    [Test]
    public void Without_a_restart_left_a_lost_state_ends_the_job_with_its_own_exit_code()
    {
        var r = LoseABuddyPair(0, Path.Combine(_dir, $"g-{Guid.NewGuid():N}.json"));
        Assert.That(r.Exit, Is.EqualTo(HpcEngine.Distributed.Elastic.ElasticStateLostException.ExitCode), r.Stderr);
        Assert.That(r.Stderr, Does.Contain("the job's state is lost"));
    }

    [Test]
    public void A_bad_fault_plan_is_refused_with_the_grammar()
    {
        var r = TestSupport.RunCli(["train", "--fault-plan", "explode:rank=1", "--epochs", "1", "--data", _dir]);
        Assert.That(r.Exit, Is.Not.Zero);
        Assert.That(r.Stderr, Does.Contain("kill:rank=R,step=S"));
    }
}
