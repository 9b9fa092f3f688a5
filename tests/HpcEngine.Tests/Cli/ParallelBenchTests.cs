using System.Text.Json;

namespace HpcEngine.Tests.Cli;

[TestFixture]
public class ParallelBenchTests
{
    [TestCase("pp", "1f1b")]
    [TestCase("tp", null)]
    public void Bench_parallel_starts_its_ranks_and_writes_the_documented_json(string mode, string? schedule)
    {
        string json = Path.Combine(TestSupport.TempDir("hpc-par-"), "r.json");
        string[] args =
        [
            "bench",
            "parallel",
            "--mode",
            mode,
            "--ranks",
            "2",
            "--model",
            "mlp-wide",
            "--batch-size",
            "32",
            "--iters",
            "2",
            "--micro-batches",
            "4",
            "--json",
            json,
            .. schedule != null ? new[] { "--schedule", schedule } : [],
        ];
        var r = TestSupport.RunCli(args, timeoutSeconds: 180);
        Assert.That(r.Exit, Is.Zero, r.Stdout + r.Stderr);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        Assert.That(root.GetProperty("mode").GetString(), Is.EqualTo(mode));
        Assert.That(root.GetProperty("ranks").GetInt32(), Is.EqualTo(2));
        Assert.That(root.GetProperty("samples_per_s").GetDouble(), Is.GreaterThan(0));
        Assert.That(root.GetProperty("bytes_per_step").GetDouble(), Is.GreaterThan(0));
        Assert.That(root.GetProperty("per_rank").GetArrayLength(), Is.EqualTo(2));
        if (mode == "pp")
        {
            Assert.That(root.GetProperty("bubble_fraction").GetDouble(), Is.InRange(0.0, 1.0));
            Assert.That(root.GetProperty("bubble_theoretical").GetDouble(), Is.EqualTo(1.0 / 5).Within(1e-12));
        }
        else
            Assert.That(root.GetProperty("bubble_fraction").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Directory.Delete(Path.GetDirectoryName(json)!, true);
    }

    [Test]
    public void One_f_one_b_holds_less_activation_memory_than_gpipe_on_every_stage()
    {
        // Each stage is its own process, so the engine's live-storage accounting (StoragePool.LiveBytes) is per stage.
        string dir = TestSupport.TempDir("hpc-peak-");
        var peaks = new Dictionary<string, double[]>();
        foreach (var schedule in new[] { "gpipe", "1f1b" })
        {
            string json = Path.Combine(dir, schedule + ".json");
            var r = TestSupport.RunCli(
                [
                    "bench",
                    "parallel",
                    "--mode",
                    "pp",
                    "--ranks",
                    "2",
                    "--schedule",
                    schedule,
                    "--micro-batches",
                    "8",
                    "--batch-size",
                    "1024",
                    "--iters",
                    "1",
                    "--json",
                    json,
                ],
                timeoutSeconds: 180
            );
            Assert.That(r.Exit, Is.Zero, r.Stdout + r.Stderr);
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            peaks[schedule] = doc
                .RootElement.GetProperty("per_rank")
                .EnumerateArray()
                .Select(e => e.GetProperty("peak_activation_bytes").GetDouble())
                .ToArray();
        }
        for (int stage = 0; stage < 2; stage++)
            Assert.That(
                peaks["1f1b"][stage],
                Is.LessThan(peaks["gpipe"][stage]),
                $"stage {stage}: 1F1B keeps at most p − s micro-batches alive, GPipe all 8"
            );
        // The last stage holds 1 micro-batch under 1F1B against 8 under GPipe.
        Assert.That(peaks["1f1b"][1], Is.LessThan(peaks["gpipe"][1] * 0.7));
        Directory.Delete(dir, true);
    }

    [Test]
    public void Bad_parallel_settings_are_one_line_errors()
    {
        foreach (
            var (args, mentions) in new (string[], string)[]
            {
                (["--mode", "zz", "--ranks", "2"], "--mode"),
                (["--mode", "pp", "--schedule", "zigzag", "--ranks", "2"], "--schedule"),
                (["--mode", "pp", "--model", "gpt-mini", "--ranks", "2"], "gpt-mini"),
                (["--mode", "tp", "--model", "cnn", "--ranks", "2"], "cnn"),
                (["--mode", "tp"], "--ranks"),
            }
        )
        {
            var r = TestSupport.RunCli(["bench", "parallel", .. args]);
            Assert.That(r.Exit, Is.EqualTo(2), r.Stderr);
            Assert.That(r.Stderr, Does.Contain(mentions));
        }
    }
}

[TestFixture]
public class GpuBenchTests
{
    [Test]
    public void Bench_gpu_without_a_device_says_why_in_one_line()
    {
        if (HpcEngine.Cuda.CudaDevices.Probe().HasDevice)
            Assert.Ignore("a CUDA device is present: the GPU bench is run by the device check, not here");
        var r = TestSupport.RunCli(["bench", "gpu"]);
        Assert.That(r.Exit, Is.EqualTo(2));
        Assert.That(r.Stderr.Trim().Split('\n'), Has.Length.EqualTo(1));
        Assert.That(r.Stderr, Does.Contain("needs a CUDA device").And.Contain("libcuda.so.1"));
    }
}
