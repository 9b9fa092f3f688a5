using HpcEngine.Benchmarks;
using HpcEngine.Tests.Distributed;

namespace HpcEngine.Tests.Benchmarks;

/// <summary>The library's collective sweep on three in-process ranks: every op's check finds no wrong element, and
/// the points are the sizes asked for with nccl-tests' bus factor.</summary>
[TestFixture]
public class CollectiveSweepTests
{
    [TestCase(CollectiveOp.AllReduce)]
    [TestCase(CollectiveOp.Broadcast)]
    [TestCase(CollectiveOp.Reduce)]
    [TestCase(CollectiveOp.AllGather)]
    [TestCase(CollectiveOp.ReduceScatter)]
    [TestCase(CollectiveOp.AllToAll)]
    [TestCase(CollectiveOp.SendRecv)]
    public void A_checked_sweep_finds_no_wrong_element(CollectiveOp op)
    {
        var all = new IReadOnlyList<CollectiveSweepPoint>[3];
        Ranks.Run(3, pg =>
            all[pg.Rank] = CollectiveSweep.Run(
                pg,
                new CollectiveSweepOptions(
                    op,
                    MinBytes: 96,
                    MaxBytes: 96 * 64,
                    Factor: 8,
                    Warmup: 1,
                    Iters: 2,
                    Check: true
                )
            )
        );
        var points = all[0];
        Assert.That(points.Select(p => p.Wrong), Is.All.EqualTo(0));
        Assert.That(points, Has.Count.EqualTo(3), "96, 768 and 6144 bytes");
        Assert.That(
            points.Select(p => p.Bytes),
            Is.EqualTo(new long[] { 96, 768, 6144 }),
            "sizes divisible by 3 ranks stay as asked"
        );
        Assert.That(
            all[1].Select(p => p.TimeMicroseconds),
            Is.EqualTo(points.Select(p => p.TimeMicroseconds)),
            "every rank reports the slowest rank's time"
        );
        foreach (var p in points)
            Assert.That(
                p.BusBandwidthGBps,
                Is.EqualTo(p.AlgBandwidthGBps * CollectiveSweep.BusFactor(op, 3)).Within(1e-12)
            );
    }

    [Test]
    public void Bus_factors_are_nccl_tests_and_bad_settings_are_refused()
    {
        Assert.That(CollectiveSweep.BusFactor(CollectiveOp.AllReduce, 4), Is.EqualTo(1.5));
        Assert.That(CollectiveSweep.BusFactor(CollectiveOp.AllGather, 4), Is.EqualTo(0.75));
        Assert.That(CollectiveSweep.BusFactor(CollectiveOp.Broadcast, 4), Is.EqualTo(1));
        Assert.That(CollectiveSweepOptions.ParseOp("reducescatter"), Is.EqualTo(CollectiveOp.ReduceScatter));
        Assert.Throws<ArgumentException>(() => CollectiveSweepOptions.ParseOp("gossip"));
        Ranks.Run(1, pg =>
            Assert.Throws<HpcEngine.Training.SettingsException>(() =>
                CollectiveSweep.Run(
                    pg,
                    new CollectiveSweepOptions(CollectiveOp.AllReduce, MinBytes: 1024, MaxBytes: 512)
                )
            )
        );
        Ranks.Run(1, pg =>
            Assert.Throws<HpcEngine.Training.SettingsException>(() =>
                CollectiveSweep.Run(pg, new CollectiveSweepOptions(CollectiveOp.AllReduce, WarmupSeconds: -1))
            )
        );
    }

    [Test]
    public void A_timed_warm_up_keeps_every_rank_in_step_and_still_checks()
    {
        // Rank 0 alone decides when the warm-up ends; were the others to count their own ops, the ranks would leave
        // it at different op counts and the checked allreduce after it would mismatch or hang.
        var all = new IReadOnlyList<CollectiveSweepPoint>[3];
        Ranks.Run(3, pg =>
        {
            if (pg.Rank == 0)
                Thread.Sleep(50); // rank 0 starts late: a count-based decision elsewhere would differ
            all[pg.Rank] = CollectiveSweep.Run(
                pg,
                new CollectiveSweepOptions(
                    CollectiveOp.AllReduce,
                    MinBytes: 4096,
                    MaxBytes: 8192,
                    Warmup: 1,
                    Iters: 3,
                    Check: true,
                    WarmupSeconds: 0.2
                )
            );
        });
        Assert.That(all.Select(p => p.Count), Is.All.EqualTo(2));
        Assert.That(all[0].Select(p => p.Wrong), Is.All.EqualTo(0));
    }
}
