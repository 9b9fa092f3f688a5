using HpcEngine.NN;
using HpcEngine.Optim;
using HpcEngine.Parallel;
using HpcEngine.Tests.Distributed;

namespace HpcEngine.Tests.Parallel;

[TestFixture]
public class StrategyTests
{
    private static Sequential Model(ulong seed) =>
        new(
            new Linear(13, 9, generator: new Generator(seed)),
            new ReLU(),
            new Linear(9, 4, generator: new Generator(seed + 50))
        );

    private static (Tensor X, Tensor Y) Batch(int step)
    {
        var x = Tensor.Randn([12, 13], DType.Float32, new Generator(300 + (ulong)step)).DetachFromScope();
        var y = Tensor.Randint(0, 4, [12], generator: new Generator(400 + (ulong)step)).DetachFromScope();
        return (x, y);
    }

    private static float[][] SingleProcess(Func<IEnumerable<Tensor>, Optimizer> make, int steps)
    {
        using var m = Model(1);
        using var opt = make(m.Parameters());
        for (int s = 0; s < steps; s++)
        {
            var (x, y) = Batch(s);
            using (x)
            using (y)
            using (new TensorScope())
                F.CrossEntropy(m.Forward(x), y).Backward();
            opt.Step();
            opt.ZeroGrad();
        }
        return m.Parameters().Select(p => p.ToArray<float>()).ToArray();
    }

    /// <summary>Runs a strategy on n in-process ranks, each on its equal share of every global batch.</summary>
    private static float[][][] Distributed(
        int n,
        string spec,
        Func<IEnumerable<Tensor>, Optimizer> make,
        int steps,
        Action<int, ITrainingStrategy, float[][]>? afterStep = null
    )
    {
        var result = new float[n][][];
        Ranks.Run(n, pg =>
        {
            using var m = Model(pg.Rank == 0 ? 1UL : 90UL + (ulong)pg.Rank);
            using var strategy = TrainingStrategies.Create(spec, m, pg, make);
            int per = 12 / n;
            for (int s = 0; s < steps; s++)
            {
                var (x, y) = Batch(s);
                using (x)
                using (y)
                using (new TensorScope())
                    F.CrossEntropy(m.Forward(x.Narrow(0, pg.Rank * per, per)), y.Narrow(0, pg.Rank * per, per))
                        .Backward();
                strategy.Step();
                afterStep?.Invoke(s, strategy, m.Parameters().Select(p => p.ToArray<float>()).ToArray());
            }
            result[pg.Rank] = m.Parameters().Select(p => p.ToArray<float>()).ToArray();
        });
        return result;
    }

    private static void AssertEqual(float[][][] got, float[][] want, double tol)
    {
        for (int r = 0; r < got.Length; r++)
        for (int k = 0; k < want.Length; k++)
            Assert.That(got[r][k], Is.EqualTo(want[k]).Within(tol), $"rank {r} parameter {k}");
    }

    [TestCase(2)]
    [TestCase(3)]
    public void Zero1_equals_synchronous_training(int n)
    {
        Func<IEnumerable<Tensor>, Optimizer> sgd = ps => new Sgd(ps, 0.1, momentum: 0.9);
        AssertEqual(Distributed(n, "zero1", sgd, 4), SingleProcess(sgd, 4), 2e-5);
        Func<IEnumerable<Tensor>, Optimizer> adam = ps => new Adam(ps, 1e-2);
        AssertEqual(Distributed(n, "zero1", adam, 3), SingleProcess(adam, 3), 2e-5);
    }

    [Test]
    public void Sync_equals_single_process_training()
    {
        Func<IEnumerable<Tensor>, Optimizer> sgd = ps => new Sgd(ps, 0.1, momentum: 0.9);
        AssertEqual(Distributed(3, "sync", sgd, 3), SingleProcess(sgd, 3), 2e-5);
    }

    [Test]
    public void Local_sgd_with_period_one_equals_synchronous_sgd()
    {
        Func<IEnumerable<Tensor>, Optimizer> sgd = ps => new Sgd(ps, 0.1);
        AssertEqual(Distributed(2, "localsgd:1", sgd, 4), SingleProcess(sgd, 4), 2e-5);
    }

    [Test]
    public void Diloco_with_period_one_unit_outer_lr_and_no_momentum_equals_synchronous_sgd()
    {
        Func<IEnumerable<Tensor>, Optimizer> sgd = ps => new Sgd(ps, 0.1);
        var result = new float[2][][];
        Ranks.Run(2, pg =>
        {
            using var m = Model(pg.Rank == 0 ? 1UL : 7UL);
            using var d = new DiLoCoStrategy(m, pg, sgd(m.Parameters()), period: 1, outerLr: 1.0, outerMomentum: 0);
            for (int s = 0; s < 4; s++)
            {
                var (x, y) = Batch(s);
                using (x)
                using (y)
                using (new TensorScope())
                    F.CrossEntropy(m.Forward(x.Narrow(0, pg.Rank * 6, 6)), y.Narrow(0, pg.Rank * 6, 6)).Backward();
                d.Step();
            }
            result[pg.Rank] = m.Parameters().Select(p => p.ToArray<float>()).ToArray();
        });
        AssertEqual(result, SingleProcess(sgd, 4), 2e-5);
    }

    [TestCase("localsgd:4")]
    [TestCase("diloco:4")]
    public void Commit_ends_a_window_early_and_the_next_window_starts_from_there(string spec)
    {
        // What an elastic run does at each epoch's end: 2 local steps, a forced exchange, then whole windows again.
        var log = new List<(long Bytes, bool Committed, float[] Params)>[2];
        Ranks.Run(2, pg =>
        {
            using var m = Model(pg.Rank == 0 ? 1UL : 5UL);
            using var s = TrainingStrategies.Create(spec, m, pg, ps => new AdamW(ps, 1e-2));
            log[pg.Rank] = [];
            void Record() =>
                log[pg.Rank]
                    .Add(
                        (
                            s.BytesCommunicated,
                            s.StepCommitted,
                            m.Parameters().SelectMany(p => p.ToArray<float>()).ToArray()
                        )
                    );
            for (int step = 0; step < 6; step++)
            {
                var (x, y) = Batch(step);
                using (x)
                using (y)
                using (new TensorScope())
                    F.CrossEntropy(m.Forward(x.Narrow(0, pg.Rank * 6, 6)), y.Narrow(0, pg.Rank * 6, 6)).Backward();
                s.Step();
                Record();
                if (step == 1)
                {
                    s.Commit();
                    Record();
                    s.Commit(); // nothing pending: no exchange
                    Record();
                }
            }
            Assert.That(s.CommitsEveryStep, Is.False);
        });
        var r0 = log[0];
        Assert.That(
            r0.Select(e => e.Committed),
            Is.EqualTo(new[] { false, false, true, true, false, false, false, true })
        );
        Assert.That(r0[1].Bytes, Is.Zero);
        Assert.That(r0[2].Bytes, Is.GreaterThan(0), "the forced exchange");
        Assert.That(r0[3].Bytes, Is.EqualTo(r0[2].Bytes), "a second Commit with nothing pending sends nothing");
        Assert.That(r0[7].Bytes, Is.EqualTo(2 * r0[2].Bytes), "the next exchange is 4 steps after the forced one");
        Assert.That(r0[2].Params, Is.EqualTo(log[1][2].Params), "replicas agree after the forced exchange");
        Assert.That(r0[7].Params, Is.EqualTo(log[1][7].Params));
        Assert.That(r0[5].Params, Is.Not.EqualTo(log[1][5].Params));
    }

    [TestCase("localsgd:3")]
    [TestCase("diloco:3")]
    public void Periodic_strategies_communicate_every_h_steps_and_agree_right_after(string spec)
    {
        var bytes = new long[6];
        var snapshots = new float[2][][][];
        Distributed(
            2,
            spec,
            ps => new AdamW(ps, 1e-2),
            6,
            (step, strategy, _) => bytes[step] = strategy.BytesCommunicated
        );
        // Per-rank parameters after every step.
        Ranks.Run(2, pg =>
        {
            using var m = Model(pg.Rank == 0 ? 1UL : 5UL);
            using var s = TrainingStrategies.Create(spec, m, pg, ps => new AdamW(ps, 1e-2));
            snapshots[pg.Rank] = new float[6][][];
            for (int step = 0; step < 6; step++)
            {
                var (x, y) = Batch(step);
                using (x)
                using (y)
                using (new TensorScope())
                    F.CrossEntropy(m.Forward(x.Narrow(0, pg.Rank * 6, 6)), y.Narrow(0, pg.Rank * 6, 6)).Backward();
                s.Step();
                snapshots[pg.Rank][step] = [m.Parameters().SelectMany(p => p.ToArray<float>()).ToArray()];
            }
        });
        Assert.That(bytes[0], Is.Zero, "nothing is sent before the first period ends");
        Assert.That(bytes[1], Is.Zero);
        Assert.That(bytes[2], Is.GreaterThan(0), "the third step exchanges");
        Assert.That(bytes[5], Is.EqualTo(2 * bytes[2]), "and so does the sixth, the same amount");
        Assert.That(snapshots[0][0][0], Is.Not.EqualTo(snapshots[1][0][0]), "replicas drift between exchanges");
        Assert.That(snapshots[0][2][0], Is.EqualTo(snapshots[1][2][0]), "and agree right after one");
    }

    [Test]
    public void Strategy_names_are_parsed_with_clear_errors()
    {
        Ranks.Run(1, pg =>
        {
            using var m = Model(1);
            Assert.Throws<ArgumentException>(() =>
                TrainingStrategies.Create("localsgd", m, pg, ps => new Sgd(ps, 0.1))
            );
            Assert.Throws<ArgumentException>(() =>
                TrainingStrategies.Create("diloco:0", m, pg, ps => new Sgd(ps, 0.1))
            );
            var ex = Assert.Throws<ArgumentException>(() =>
                TrainingStrategies.Create("ssp:soon", m, pg, ps => new Sgd(ps, 0.1))
            );
            Assert.That(ex!.Message, Does.Contain("ssp:soon"));
            Assert.Throws<ArgumentException>(() => TrainingStrategies.Create("ssp", m, pg, ps => new Sgd(ps, 0.1)));
            Assert.Throws<ArgumentException>(() => TrainingStrategies.Create("ps:2", m, pg, ps => new Sgd(ps, 0.1)));
            var codec = HpcEngine.Compression.GradientCodec.Create("topk:0.1");
            Assert.Throws<ArgumentException>(() =>
                TrainingStrategies.Create("zero1", m, pg, ps => new Sgd(ps, 0.1), codec)
            );
            using var s = TrainingStrategies.Create("diloco:4", m, pg, ps => new AdamW(ps));
            Assert.That(s.Name, Is.EqualTo("diloco:4"));
        });
    }

    [TestCase(2)]
    [TestCase(3)]
    public void Ssp_with_bound_zero_equals_synchronous_training(int n)
    {
        Func<IEnumerable<Tensor>, Optimizer> sgd = ps => new Sgd(ps, 0.1, momentum: 0.9);
        AssertEqual(Distributed(n, "ssp:0", sgd, 4), SingleProcess(sgd, 4), 2e-5);
        Func<IEnumerable<Tensor>, Optimizer> adam = ps => new Adam(ps, 1e-2);
        AssertEqual(Distributed(n, "ssp:0", adam, 3), SingleProcess(adam, 3), 2e-5);
    }

    /// <summary>Three workers, rank 1 a straggler (it sleeps every step): what each server allowed and
    /// applied.</summary>
    private static (long[] MaxLead, StalenessStats[] Staleness, float[][] Final) RunWithStraggler(
        string spec,
        int steps
    )
    {
        var lead = new long[3];
        var stale = new StalenessStats[3];
        var final = new float[3][];
        Ranks.Run(3, pg =>
        {
            using var m = Model(1);
            var s = (ParameterServerStrategy)
                TrainingStrategies.Create(spec, m, pg, ps => new Sgd(ps, 0.05, momentum: 0.9));
            for (int step = 0; step < steps; step++)
            {
                var (x, y) = Batch(step);
                using (x)
                using (y)
                using (new TensorScope())
                    F.CrossEntropy(m.Forward(x.Narrow(0, pg.Rank * 4, 4)), y.Narrow(0, pg.Rank * 4, 4)).Backward();
                if (pg.Rank == 1)
                    Thread.Sleep(10);
                s.Step();
            }
            s.Finish();
            lead[pg.Rank] = s.ObservedMaxLead;
            stale[pg.Rank] = s.Staleness;
            final[pg.Rank] = m.Parameters().SelectMany(p => p.ToArray<float>()).ToArray();
            s.Dispose();
        });
        return (lead, stale, final);
    }

    [TestCase("ssp:0", 0)]
    [TestCase("ssp:2", 2)]
    public void Ssp_never_lets_a_worker_run_more_than_k_steps_ahead_and_applies_every_gradient(string spec, int k)
    {
        var (lead, stale, final) = RunWithStraggler(spec, 10);
        for (int r = 0; r < 3; r++)
        {
            Assert.That(lead[r], Is.LessThanOrEqualTo(k), $"server {r} let a worker lead the slowest by more than {k}");
            Assert.That(stale[r].Updates, Is.EqualTo(3 * 10), $"server {r} applied every pushed gradient exactly once");
            Assert.That(final[r], Is.EqualTo(final[0]), "after Finish every replica holds the final parameters");
        }
        if (k == 0)
            Assert.That(
                stale.Max(s => s.Max),
                Is.Zero,
                "bulk-synchronous: every gradient applied to the parameters it was computed on"
            );
    }

    [Test]
    public void Ssp_inf_runs_to_the_end_without_losing_a_gradient()
    {
        var (_, stale, final) = RunWithStraggler("ssp:inf", 10);
        for (int r = 0; r < 3; r++)
        {
            Assert.That(stale[r].Updates, Is.EqualTo(3 * 10));
            Assert.That(final[r], Is.EqualTo(final[0]));
        }
        Assert.That(final[0].All(float.IsFinite), Is.True);
    }

    [TestCase("diloco:1")]
    [TestCase("localsgd:2")]
    public void Periodic_strategies_compress_their_pseudo_gradients_and_keep_replicas_identical(string spec)
    {
        var bytes = new long[2];
        var result = new float[2][];
        Ranks.Run(2, pg =>
        {
            using var m = Model(pg.Rank == 0 ? 1UL : 5UL);
            using var s = TrainingStrategies.Create(
                spec,
                m,
                pg,
                ps => new Sgd(ps, 0.1),
                HpcEngine.Compression.GradientCodec.Create("topk:0.1")
            );
            for (int step = 0; step < 4; step++)
            {
                var (x, y) = Batch(step);
                using (x)
                using (y)
                using (new TensorScope())
                    F.CrossEntropy(m.Forward(x.Narrow(0, pg.Rank * 6, 6)), y.Narrow(0, pg.Rank * 6, 6)).Backward();
                s.Step();
            }
            bytes[pg.Rank] = s.BytesCommunicated;
            Assert.That(s.ResidualNorm, Is.GreaterThan(0), "top-k keeps what it did not send");
            result[pg.Rank] = m.Parameters().SelectMany(p => p.ToArray<float>()).ToArray();
        });
        int exchanges = spec == "diloco:1" ? 4 : 2,
            paramCount = 13 * 9 + 9 + 9 * 4 + 4;
        Assert.That(
            bytes[0],
            Is.EqualTo(exchanges * (4 + 8 * (int)Math.Ceiling(0.1 * paramCount))),
            "4 + 8k bytes per exchange"
        );
        Assert.That(result[1], Is.EqualTo(result[0]));
    }

    [TestCase("ssp:0:1", 3)]
    [TestCase("ssp:0:2", 4)]
    public void Ssp_with_dedicated_server_ranks_and_bound_zero_equals_synchronous_training(string spec, int ranks)
    {
        Func<IEnumerable<Tensor>, Optimizer> sgd = ps => new Sgd(ps, 0.1, momentum: 0.9);
        int servers = int.Parse(spec.Split(':')[2], System.Globalization.CultureInfo.InvariantCulture),
            workers = ranks - servers;
        var result = new float[ranks][][];
        var roles = new bool[ranks];
        var stale = new StalenessStats[ranks];
        Ranks.Run(ranks, pg =>
        {
            using var m = Model(pg.Rank == 0 ? 1UL : 90UL + (ulong)pg.Rank);
            var s = (ParameterServerStrategy)TrainingStrategies.Create(spec, m, pg, sgd);
            roles[pg.Rank] = s.IsWorker;
            Assert.That(s.Workers, Is.EqualTo(workers));
            if (!s.IsWorker)
                s.ServeUntilDone();
            else
            {
                int per = 12 / workers;
                for (int step = 0; step < 4; step++)
                {
                    var (x, y) = Batch(step);
                    using (x)
                    using (y)
                    using (new TensorScope())
                        F.CrossEntropy(m.Forward(x.Narrow(0, pg.Rank * per, per)), y.Narrow(0, pg.Rank * per, per))
                            .Backward();
                    s.Step();
                }
                s.Finish();
            }
            stale[pg.Rank] = s.Staleness;
            result[pg.Rank] = m.Parameters().Select(p => p.ToArray<float>()).ToArray();
            s.Dispose();
        });
        Assert.That(roles.Count(r => r), Is.EqualTo(workers), "the first ranks train, the last serve");
        Assert.That(roles.Take(workers).All(r => r), Is.True);
        AssertEqual(result, SingleProcess(sgd, 4), 2e-5);
        for (int r = workers; r < ranks; r++)
            Assert.That(stale[r].Updates, Is.EqualTo(workers * 4), $"server {r} applied every gradient once");
    }
}
