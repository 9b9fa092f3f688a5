using HpcEngine.Examples.Embedding;

namespace HpcEngine.Tests.Cli;

[TestFixture]
public class ExampleTests
{
    [Test]
    public void The_embedding_example_trains_saves_reloads_and_predicts()
    {
        string weights = Path.Combine(TestSupport.TempDir("hpc-ex-"), "w.safetensors");
        var log = new StringWriter();
        using (var scope = new TensorScope())
        {
            double acc = FashionExample.Run(null, epochs: 1, weights, log);
            Assert.That(acc, Is.GreaterThan(0.7), log.ToString());
        }
        Assert.That(File.Exists(weights), Is.True);
        Assert.That(log.ToString(), Does.Contain("accuracy of the reloaded model"));
    }

    [Test]
    public void An_embedding_tool_runs_the_strategy_study_from_csharp()
    {
        string dir = TestSupport.TempDir("hpc-study-");
        try
        {
            var log = new StringWriter();
            var runs = HpcEngine.Examples.Embedding.StrategyStudyExample.Run(null, epochs: 2, dir, log);
            Assert.That(
                runs.Select(r => $"{r.Strategy} + {r.Codec}"),
                Is.EqualTo(new[] { "sync + none", "sync + topk:0.05", "localsgd:4 + none", "localsgd:4 + topk:0.05" }),
                log.ToString()
            );
            Assert.That(runs.All(r => r.Status == "ok"), Is.True, log.ToString());
            var sync = runs[0];
            var topk = runs[1];
            Assert.That(
                topk.BytesPerWorkerPerStep,
                Is.LessThan(sync.BytesPerWorkerPerStep / 4),
                "top-5% sends a fraction of the dense bytes"
            );
            Assert.That(
                runs.All(r => r.FinalTestAccuracy > 0.5),
                Is.True,
                "well above chance (0.1) on the embedded subset" + log
            );
            // The same results schema the CLI writes, read back by the library.
            var (config, read, skipped) = HpcEngine.Benchmarks.StrategyReport.Read(Path.Combine(dir, "results.json"));
            Assert.That(read.Select(r => r.FinalTestAccuracy), Is.EqualTo(runs.Select(r => r.FinalTestAccuracy)));
            Assert.That(config.Strategies, Is.EqualTo(new[] { "sync", "localsgd:4" }));
            Assert.That(skipped, Is.Empty);
            Assert.That(File.ReadAllText(Path.Combine(dir, "report.md")), Does.Contain("## Conclusions"));
            Assert.That(log.ToString(), Does.Contain("[4/4").And.Contain("fewer bytes per step"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
