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
        string[] args = ["bench", "parallel", "--mode", mode, "--ranks", "2", "--model", "mlp-wide", "--batch-size", "32", "--iters", "2", "--micro-batches", "4", "--json", json,
            .. schedule != null ? new[] { "--schedule", schedule } : []];
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
        else Assert.That(root.GetProperty("bubble_fraction").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Directory.Delete(Path.GetDirectoryName(json)!, true);
    }

    [Test]
    public void Bad_parallel_settings_are_one_line_errors()
    {
        foreach (var (args, mentions) in new (string[], string)[]
        {
            (["--mode", "zz", "--ranks", "2"], "--mode"),
            (["--mode", "pp", "--schedule", "zigzag", "--ranks", "2"], "--schedule"),
            (["--mode", "pp", "--model", "gpt-mini", "--ranks", "2"], "gpt-mini"),
            (["--mode", "tp", "--model", "cnn", "--ranks", "2"], "cnn"),
            (["--mode", "tp"], "--ranks"),
        })
        {
            var r = TestSupport.RunCli(["bench", "parallel", .. args]);
            Assert.That(r.Exit, Is.EqualTo(2), r.Stderr);
            Assert.That(r.Stderr, Does.Contain(mentions));
        }
    }
}
