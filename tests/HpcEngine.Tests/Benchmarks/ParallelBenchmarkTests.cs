using HpcEngine.Benchmarks;
using HpcEngine.Parallel.ModelParallel;
using HpcEngine.Tests.Distributed;

namespace HpcEngine.Tests.Benchmarks;

/// <summary>The library's parallel benchmark on two in-process ranks.</summary>
[TestFixture]
public class ParallelBenchmarkTests
{
    [Test]
    public void A_pipeline_reports_its_bubble_against_theory_and_every_rank_gets_the_same_figures()
    {
        var results = new ParallelBenchmarkResult[2];
        Ranks.Run(
            2,
            pg =>
                results[pg.Rank] = ParallelBenchmark.Run(
                    pg,
                    new ParallelBenchmarkOptions(
                        ParallelMode.Pipeline,
                        BatchSize: 32,
                        Iters: 2,
                        Schedule: PipelineSchedule.GPipe,
                        MicroBatches: 4
                    )
                ),
            timeoutSeconds: 120
        );
        var r = results[0];
        Assert.That(r.BubbleTheoretical, Is.EqualTo(1.0 / 5), "(p − 1) / (m + p − 1) with p = 2, m = 4");
        Assert.That(r.BubbleFraction, Is.InRange(0.0, 1.0));
        Assert.That(r.PerRank.Select(p => p.Rank), Is.EqualTo(new[] { 0, 1 }));
        Assert.That(r.PerRank.All(p => p.BytesPerStep > 0), Is.True, "activations forward, gradients back");
        Assert.That(
            results[1].StepSeconds,
            Is.EqualTo(r.StepSeconds),
            "gathered: every rank holds the slowest rank's step time"
        );
        Assert.That(r.SamplesPerSecond, Is.EqualTo(32 / r.StepSeconds).Within(1e-9));
    }

    [Test]
    public void Settings_that_cannot_split_are_refused_naming_the_setting()
    {
        Ranks.Run(2, pg =>
        {
            var e = Assert.Throws<HpcEngine.Training.SettingsException>(() =>
                ParallelBenchmark.Run(pg, new ParallelBenchmarkOptions(ParallelMode.Data, BatchSize: 33))
            );
            Assert.That(e!.ParamName, Is.EqualTo("BatchSize"));
            Assert.Throws<HpcEngine.Training.SettingsException>(() =>
                ParallelBenchmark.Run(pg, new ParallelBenchmarkOptions(ParallelMode.Pipeline, Model: "gpt-mini"))
            );
        });
    }
}
