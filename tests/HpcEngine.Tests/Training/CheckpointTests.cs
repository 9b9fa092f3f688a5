using System.Text.Json;
using HpcEngine.Data;
using HpcEngine.NN;
using HpcEngine.Optim;
using HpcEngine.Training;

namespace HpcEngine.Tests.Training;

[TestFixture]
public class CheckpointTests
{
    private string _dir = null!;

    [SetUp]
    public void MakeDir() => _dir = TestSupport.TempDir("hpc-ckpt-");

    [TearDown]
    public void RemoveDir() => Directory.Delete(_dir, true);

    private static (Module, Optimizer) Fresh(ulong seed)
    {
        var m = Models.Create("mlp", new Generator(seed));
        return (m, new Adam(m.Parameters(), 1e-3));
    }

    [Test]
    public void Save_then_load_restores_model_optimizer_and_position()
    {
        var (m, opt) = Fresh(1);
        using (m)
        using (opt)
        {
            foreach (var p in m.Parameters())
                p.Grad = Tensor.OnesLike(p).DetachFromScope();
            opt.Step();
            Checkpoint.Save(_dir, m, opt, new TrainingState(3, 17, 42, 5, 99, "{\"model\":\"mlp\"}"));
            var (m2, opt2) = Fresh(2);
            using (m2)
            using (opt2)
            {
                var st = Checkpoint.Load(_dir, m2, opt2)!;
                Assert.That(st, Is.EqualTo(new TrainingState(3, 17, 42, 5, 99, "{\"model\":\"mlp\"}")));
                Assert.That(opt2.Steps, Is.EqualTo(1));
                foreach (var ((_, a), (_, b)) in m.StateDict().Zip(m2.StateDict()))
                    Assert.That(b.ToBytes(), Is.EqualTo(a.ToBytes()));
            }
        }
    }

    [Test]
    public void A_crash_before_the_pointer_switch_leaves_the_previous_checkpoint()
    {
        var (m, opt) = Fresh(1);
        using (m)
        using (opt)
        {
            Checkpoint.Save(_dir, m, opt, new TrainingState(1, 0, 10, 0, 0, "{}"));
            // A later save that died after writing its files but before replacing checkpoint.json:
            File.Copy(
                Path.Combine(_dir, "model-000000010.safetensors"),
                Path.Combine(_dir, "model-000000020.safetensors")
            );
            File.WriteAllBytes(Path.Combine(_dir, "trainer-000000020.safetensors"), [1, 2, 3]);
            File.WriteAllText(Path.Combine(_dir, "checkpoint.json.1234.tmp"), "{\"partial");
            var (m2, opt2) = Fresh(3);
            using (m2)
            using (opt2)
                Assert.That(Checkpoint.Load(_dir, m2, opt2)!.Step, Is.EqualTo(10));
        }
    }

    [Test]
    public void A_damaged_pointer_is_an_error_naming_the_file()
    {
        var (m, opt) = Fresh(1);
        using (m)
        using (opt)
        {
            File.WriteAllText(Path.Combine(_dir, Checkpoint.PointerFile), "{not json");
            var ex = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(_dir, m, opt));
            Assert.That(ex!.Message, Does.Contain(Checkpoint.PointerFile));
            Assert.That(
                Checkpoint.Load(TestSupport.TempDir("hpc-empty-"), m, opt),
                Is.Null,
                "an empty directory holds no checkpoint"
            );
        }
    }

    [Test]
    public void Old_checkpoints_are_pruned_to_the_last_two()
    {
        var (m, opt) = Fresh(1);
        using (m)
        using (opt)
            for (int s = 1; s <= 4; s++)
                Checkpoint.Save(_dir, m, opt, new TrainingState(s, 0, s, 0, 0, "{}"));
        Assert.That(
            Directory.GetFiles(_dir, "model-*").Select(Path.GetFileName).Order(),
            Is.EqualTo(new[] { "model-000000003.safetensors", "model-000000004.safetensors" })
        );
        Assert.That(Directory.GetFiles(_dir, "trainer-*"), Has.Length.EqualTo(2));
    }

    [Test]
    public void Resuming_in_a_new_process_gives_bitwise_identical_losses_and_weights()
    {
        // 2 epochs of 8 steps straight, against 11 steps + checkpoint + a new process that resumes and finishes.
        string data = Path.Combine(_dir, "data"),
            straight = Path.Combine(_dir, "straight"),
            split = Path.Combine(_dir, "split");
        Directory.CreateDirectory(data);
        TestSupport.WriteTinyFashionMnist(data, 512, 64);
        string[] common =
        [
            "train",
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--data",
            data,
            "--seed",
            "3",
            "--threads",
            "2",
        ];
        var a = TestSupport.RunCli([.. common, "--checkpoint-dir", straight, "--json", Path.Combine(_dir, "a.json")]);
        Assert.That(a.Exit, Is.Zero, a.Stderr);
        var b1 = TestSupport.RunCli([.. common, "--checkpoint-dir", split, "--max-steps", "11"]);
        Assert.That(b1.Exit, Is.Zero, b1.Stderr);
        var b2 = TestSupport.RunCli([
            .. common,
            "--checkpoint-dir",
            split,
            "--resume",
            "--json",
            Path.Combine(_dir, "b.json"),
        ]);
        Assert.That(b2.Exit, Is.Zero, b2.Stderr);
        Assert.That(b2.Stdout, Does.Contain("resumed from"));

        double[] Losses(string f) =>
            JsonDocument
                .Parse(File.ReadAllText(Path.Combine(_dir, f)))
                .RootElement.GetProperty("step_losses")
                .EnumerateArray()
                .Select(e => e.GetDouble())
                .ToArray();
        var full = Losses("a.json");
        var resumed = Losses("b.json");
        Assert.That(full, Has.Length.EqualTo(16));
        Assert.That(resumed, Is.EqualTo(full[11..]), "the resumed steps see exactly the losses of the straight run");
        var (ma, _) = Checkpoint.Locate(straight);
        var (mb, _) = Checkpoint.Locate(split);
        Assert.That(File.ReadAllBytes(mb!), Is.EqualTo(File.ReadAllBytes(ma!)), "final weights are bitwise identical");
    }

    [TestCase("zero1", null)]
    [TestCase("diloco:3", "topk:0.1")]
    [TestCase("sync", "powersgd:1")]
    public void Distributed_runs_resume_exactly_with_every_ranks_own_state(string strategy, string? codec)
    {
        // 2 workers × 2 epochs of 4 steps, straight against 5 steps + checkpoint + new processes that resume: the
        // per-rank files carry what differs between ranks (shard optimizer, DiLoCo's outer state, codec residuals and
        // Q).
        string data = Path.Combine(_dir, "data"),
            straight = Path.Combine(_dir, "straight"),
            split = Path.Combine(_dir, "split");
        Directory.CreateDirectory(data);
        TestSupport.WriteTinyFashionMnist(data, 512, 64);
        string[] train =
        [
            "hpcengine",
            "train",
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--data",
            data,
            "--seed",
            "5",
            "--strategy",
            strategy,
            .. codec != null ? new[] { "--compress", codec } : [],
        ];
        string[] launch = ["launch", "--nproc-per-node", "2", "--"];
        var a = TestSupport.RunCli([
            .. launch,
            .. train,
            "--checkpoint-dir",
            straight,
            "--json",
            Path.Combine(_dir, "a.json"),
        ]);
        Assert.That(a.Exit, Is.Zero, a.Stdout + a.Stderr);
        var b1 = TestSupport.RunCli([.. launch, .. train, "--checkpoint-dir", split, "--max-steps", "5"]);
        Assert.That(b1.Exit, Is.Zero, b1.Stdout + b1.Stderr);
        Assert.That(
            Directory.GetFiles(split, "rank*-000000005.safetensors"),
            Has.Length.EqualTo(2),
            "one state file per rank"
        );
        var b2 = TestSupport.RunCli([
            .. launch,
            .. train,
            "--checkpoint-dir",
            split,
            "--resume",
            "--json",
            Path.Combine(_dir, "b.json"),
        ]);
        Assert.That(b2.Exit, Is.Zero, b2.Stdout + b2.Stderr);

        double[] Losses(string f) =>
            JsonDocument
                .Parse(File.ReadAllText(Path.Combine(_dir, f)))
                .RootElement.GetProperty("step_losses")
                .EnumerateArray()
                .Select(e => e.GetDouble())
                .ToArray();
        var full = Losses("a.json");
        Assert.That(full, Has.Length.EqualTo(8));
        Assert.That(
            Losses("b.json"),
            Is.EqualTo(full[5..]),
            "the resumed steps see exactly the losses of the straight run"
        );
        var (ma, _) = Checkpoint.Locate(straight);
        var (mb, _) = Checkpoint.Locate(split);
        Assert.That(File.ReadAllBytes(mb!), Is.EqualTo(File.ReadAllBytes(ma!)), "final weights are bitwise identical");
    }

    [Test]
    public void A_parameter_server_run_refuses_a_checkpoint_directory_up_front()
    {
        var r = TestSupport.RunCli(["train", "--strategy", "ssp:2", "--checkpoint-dir", Path.Combine(_dir, "c")]);
        Assert.That(r.Exit, Is.EqualTo(2));
        Assert.That(r.Stderr, Does.Contain("--checkpoint-dir is not supported with --strategy ssp:2"));
    }

    [Test]
    public void A_short_run_on_the_embedded_data_clears_a_clear_accuracy_bar()
    {
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        using (train)
        using (test)
        {
            var r = Trainer.Run(TrainConfig.For("mlp") with { Epochs = 2, Seed = 1 }, train, test, "embedded");
            Assert.That(r.FinalTestAccuracy, Is.GreaterThan(0.78), "mlp, 2 epochs on 10,000 images (chance is 0.10)");
            Assert.That(r.Epochs, Has.Count.EqualTo(2));
            Assert.That(r.Epochs[1].TrainLoss, Is.LessThan(r.Epochs[0].TrainLoss));
        }
    }
}

[TestFixture]
public class StragglerTests
{
    [Test]
    public void Straggler_spec_slows_only_the_named_rank()
    {
        Assert.That(Trainer.StragglerFactor(1, "1:1.5"), Is.EqualTo(1.5));
        Assert.That(Trainer.StragglerFactor(0, "1:1.5"), Is.EqualTo(1));
        Assert.That(Trainer.StragglerFactor(0, ""), Is.EqualTo(1));
        Assert.Throws<TrainConfigException>(() => Trainer.StragglerFactor(0, "fast"));
        Assert.Throws<TrainConfigException>(() => Trainer.StragglerFactor(0, "1:0.5"));
    }
}
