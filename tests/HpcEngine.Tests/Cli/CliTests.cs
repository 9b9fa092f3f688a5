using System.Text.Json;

namespace HpcEngine.Tests.Cli;

/// <summary>The `hpcengine` command as a user meets it: bad input gives one line and a non-zero exit, no stack
/// trace.</summary>
[TestFixture]
public class CliTests
{
    private static void AssertOneLineError((int Exit, string Stdout, string Stderr) r, string mentions)
    {
        Assert.That(r.Exit, Is.EqualTo(2), r.Stdout + r.Stderr);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), r.Stderr);
        Assert.That(lines[0], Does.StartWith("hpcengine: error:").And.Contain(mentions));
        Assert.That(r.Stderr, Does.Not.Contain("   at "), "no stack trace");
    }

    [Test]
    public void Bad_arguments_give_a_one_line_error()
    {
        AssertOneLineError(TestSupport.RunCli(["train", "--model", "resnet"]), "resnet");
        AssertOneLineError(TestSupport.RunCli(["train", "--epochs", "0"]), "--epochs");
        AssertOneLineError(TestSupport.RunCli(["bench", "gemm", "--size", "-3"]), "--size");
        AssertOneLineError(TestSupport.RunCli(["train", "--data", "/nonexistent/dir"]), "/nonexistent/dir");
        AssertOneLineError(
            TestSupport.RunCli(["train", "--model", "cnn", "--compress", "dgc:0.01"]),
            "--optimizer sgd"
        );
        // The library names TrainConfig properties; the CLI says them as the flags the user typed.
        AssertOneLineError(TestSupport.RunCli(["train", "--save-every", "5"]), "--save-every needs --checkpoint-dir");
        AssertOneLineError(TestSupport.RunCli(["train", "--cuda-graph"]), "--cuda-graph needs --device cuda");
        AssertOneLineError(TestSupport.RunCli(["train", "--device", "tpu"]), "--device: 'tpu' is not a device");
        AssertOneLineError(
            TestSupport.RunCli(["train", "--compress", "topk:2"]),
            "--compress: codec 'topk:2' needs a fraction"
        );
    }

    [Test]
    public void Corrupt_data_gives_a_one_line_error_naming_the_file()
    {
        string dir = TestSupport.TempDir("hpc-cli-");
        try
        {
            TestSupport.WriteTinyFashionMnist(dir, 20, 10);
            File.WriteAllBytes(Path.Combine(dir, "train-labels-idx1-ubyte.gz"), [0x1f, 0x8b, 1, 2, 3]);
            AssertOneLineError(TestSupport.RunCli(["train", "--data", dir]), "train-labels-idx1-ubyte.gz");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void Train_then_predict_reports_accuracy_as_json()
    {
        string dir = TestSupport.TempDir("hpc-cli-");
        try
        {
            string data = Path.Combine(dir, "data"),
                ckpt = Path.Combine(dir, "ckpt");
            Directory.CreateDirectory(data);
            TestSupport.WriteTinyFashionMnist(data, 600, 200);
            var t = TestSupport.RunCli([
                "train",
                "--model",
                "mlp",
                "--epochs",
                "2",
                "--data",
                data,
                "--checkpoint-dir",
                ckpt,
                "--json",
                Path.Combine(dir, "t.json"),
            ]);
            Assert.That(t.Exit, Is.Zero, t.Stderr);
            Assert.That(t.Stdout, Does.Contain("| epoch | train loss | test accuracy |"));
            using var tj = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "t.json")));
            foreach (
                var key in new[]
                {
                    "model",
                    "epochs",
                    "final_test_accuracy",
                    "best_test_accuracy",
                    "train_time_s",
                    "samples_per_s",
                    "data_source",
                }
            )
                Assert.That(tj.RootElement.TryGetProperty(key, out _), Is.True, key);
            double trained = tj.RootElement.GetProperty("final_test_accuracy").GetDouble();
            Assert.That(trained, Is.GreaterThan(0.5), "the synthetic classes are learnable");

            var p = TestSupport.RunCli([
                "predict",
                "--checkpoint",
                ckpt,
                "--data",
                data,
                "--json",
                Path.Combine(dir, "p.json"),
            ]);
            Assert.That(p.Exit, Is.Zero, p.Stderr);
            using var pj = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "p.json")));
            Assert.That(
                pj.RootElement.GetProperty("test_accuracy").GetDouble(),
                Is.EqualTo(trained).Within(1e-12),
                "predict reproduces the final evaluation"
            );
            Assert.That(pj.RootElement.GetProperty("per_class_accuracy").EnumerateObject().Count(), Is.EqualTo(10));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void Bench_writes_the_documented_json()
    {
        string f = Path.GetTempFileName();
        try
        {
            var r = TestSupport.RunCli(["bench", "gemm", "--size", "64", "--iters", "3", "--json", f]);
            Assert.That(r.Exit, Is.Zero, r.Stderr);
            using var j = JsonDocument.Parse(File.ReadAllText(f));
            Assert.That(j.RootElement.GetProperty("size").GetInt32(), Is.EqualTo(64));
            Assert.That(j.RootElement.GetProperty("gflops").GetDouble(), Is.GreaterThan(0));
            var s = TestSupport.RunCli([
                "bench",
                "step",
                "--model",
                "mlp",
                "--batch-size",
                "16",
                "--iters",
                "3",
                "--json",
                f,
            ]);
            Assert.That(s.Exit, Is.Zero, s.Stderr);
            using var js = JsonDocument.Parse(File.ReadAllText(f));
            Assert.That(js.RootElement.GetProperty("ms_per_step").GetDouble(), Is.GreaterThan(0));
            Assert.That(js.RootElement.GetProperty("model").GetString(), Is.EqualTo("mlp"));
            var p = TestSupport.RunCli([
                "bench",
                "step",
                "--model",
                "cnn",
                "--batch-size",
                "4",
                "--iters",
                "2",
                "--profile",
                "--json",
                f,
            ]);
            Assert.That(p.Exit, Is.Zero, p.Stderr);
            Assert.That(p.Stdout, Does.Contain("conv2d").And.Contain("backward"));
            using var jp = JsonDocument.Parse(File.ReadAllText(f));
            var ops = jp.RootElement.GetProperty("profile").EnumerateArray().ToList();
            var conv = ops.Single(o =>
                o.GetProperty("op").GetString() == "conv2d" && o.GetProperty("phase").GetString() == "forward"
            );
            Assert.That(conv.GetProperty("calls_per_step").GetDouble(), Is.EqualTo(2), "the cnn has two convolutions");
            double shares = ops.Sum(o => o.GetProperty("share").GetDouble());
            Assert.That(shares, Is.EqualTo(1).Within(0.02), "the rows, unattributed included, add up to the step");
        }
        finally
        {
            File.Delete(f);
        }
    }
}
