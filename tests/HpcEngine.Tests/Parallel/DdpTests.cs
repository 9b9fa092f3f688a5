using HpcEngine.Autograd;
using HpcEngine.NN;
using HpcEngine.Optim;
using HpcEngine.Parallel;
using HpcEngine.Tests.Distributed;

namespace HpcEngine.Tests.Parallel;

[TestFixture]
public class DdpTests
{
    private static Sequential Model(ulong seed) =>
        new(
            new Linear(20, 16, generator: new Generator(seed)),
            new ReLU(),
            new Linear(16, 5, generator: new Generator(seed + 100))
        );

    private static (Tensor X, Tensor Y) Batch(int step, int n = 16)
    {
        var x = Tensor.Randn([n, 20], DType.Float32, new Generator(1000 + (ulong)step)).DetachFromScope();
        var y = Tensor.Randint(0, 5, [n], generator: new Generator(2000 + (ulong)step)).DetachFromScope();
        return (x, y);
    }

    /// <summary>Single-process reference: SGD with momentum on the whole global batch.</summary>
    private static float[][] Reference(int steps)
    {
        using var m = Model(1);
        using var opt = new Sgd(m.Parameters(), 0.1, momentum: 0.9);
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

    [TestCase(2)]
    [TestCase(4)]
    public void Ddp_equals_single_process_training_on_the_global_batch(int n)
    {
        var want = Reference(4);
        var got = new float[n][][];
        Ranks.Run(n, pg =>
        {
            // Different seeds per rank: the initial broadcast must make them rank 0's model.
            using var m = Model(pg.Rank == 0 ? 1UL : 77UL + (ulong)pg.Rank);
            using var ddp = new DistributedDataParallel(m, pg, bucketBytes: 256);
            using var opt = new Sgd(m.Parameters(), 0.1, momentum: 0.9);
            int per = 16 / n;
            for (int s = 0; s < 4; s++)
            {
                var (x, y) = Batch(s);
                using (x)
                using (y)
                using (new TensorScope())
                {
                    var xs = x.Narrow(0, pg.Rank * per, per);
                    var ys = y.Narrow(0, pg.Rank * per, per);
                    F.CrossEntropy(ddp.Forward(xs), ys).Backward();
                }
                ddp.Synchronize();
                opt.Step();
                opt.ZeroGrad();
            }
            got[pg.Rank] = m.Parameters().Select(p => p.ToArray<float>()).ToArray();
        });
        for (int r = 0; r < n; r++)
        for (int k = 0; k < want.Length; k++)
            Assert.That(got[r][k], Is.EqualTo(want[k]).Within(2e-5), $"rank {r} parameter {k}");
    }

    [Test]
    public void The_first_bucket_is_launched_before_backward_ends()
    {
        IReadOnlyList<string>? events = null;
        Ranks.Run(2, pg =>
        {
            using var m = new Sequential(
                new Linear(32, 32, generator: new Generator(1)),
                new ReLU(),
                new Linear(32, 32, generator: new Generator(2)),
                new ReLU(),
                new Linear(32, 4, generator: new Generator(3))
            );
            using var ddp = new DistributedDataParallel(m, pg, bucketBytes: 1024);
            var (x, y) = Batch(0, 8);
            using var x32 = Tensor.Randn([8, 32], DType.Float32, new Generator(5));
            using (x)
            using (y)
            using (new TensorScope())
                F.CrossEntropy(ddp.Forward(x32), Tensor.Randint(0, 4, [8], generator: new Generator(6))).Backward();
            if (pg.Rank == 0)
                events = ddp.Events.ToArray();
            ddp.Synchronize();
            Assert.That(
                ddp.BucketBytes.Count,
                Is.GreaterThanOrEqualTo(2),
                "several buckets, so one can go out while backward continues"
            );
        });
        // Event order, not durations: a bucket went out while later gradients were still being computed.
        int firstLaunch = events!.ToList().FindIndex(e => e.StartsWith("launch:", StringComparison.Ordinal));
        int lastGrad = events!.ToList().FindLastIndex(e => e.StartsWith("grad:", StringComparison.Ordinal));
        Assert.That(firstLaunch, Is.GreaterThanOrEqualTo(0), string.Join(", ", events!));
        Assert.That(firstLaunch, Is.LessThan(lastGrad), string.Join(", ", events!));
        Assert.That(
            events!.First(e => e.StartsWith("grad:", StringComparison.Ordinal)),
            Does.StartWith("grad:4."),
            "the last layer's gradients are ready first"
        );
    }

    [Test]
    public void No_sync_accumulates_locally_and_the_next_backward_averages_the_total()
    {
        // Reference: one process, two micro-batches per rank-share accumulated → gradient of the summed losses.
        using var refModel = Model(1);
        for (int s = 0; s < 2; s++)
        {
            var (x, y) = Batch(s);
            using (x)
            using (y)
            using (new TensorScope())
                F.CrossEntropy(refModel.Forward(x), y).Backward();
        }
        var want = refModel.Parameters().Select(p => p.Grad!.ToArray<float>()).ToArray();
        var got = new float[2][][];
        Ranks.Run(2, pg =>
        {
            using var m = Model(1);
            using var ddp = new DistributedDataParallel(m, pg, bucketBytes: 256);
            for (int s = 0; s < 2; s++)
            {
                var (x, y) = Batch(s);
                using var _ = s == 0 ? ddp.NoSync() : null;
                using (x)
                using (y)
                using (new TensorScope())
                    F.CrossEntropy(ddp.Forward(x.Narrow(0, pg.Rank * 8, 8)), y.Narrow(0, pg.Rank * 8, 8)).Backward();
            }
            Assert.That(
                ddp.BytesReduced,
                Is.EqualTo(m.ParameterCount() * 4),
                "one synchronised backward, each gradient reduced once"
            );
            ddp.Synchronize();
            got[pg.Rank] = m.Parameters().Select(p => p.Grad!.ToArray<float>()).ToArray();
        });
        // Averaging the per-rank means over 2 ranks gives the mean over the global batch of each step, summed over
        // steps.
        for (int k = 0; k < want.Length; k++)
            Assert.That(got[0][k], Is.EqualTo(want[k]).Within(1e-5));
        for (int k = 0; k < want.Length; k++)
            Assert.That(got[1][k], Is.EqualTo(got[0][k]));
    }
}

[TestFixture]
public class CompressedDdpTests
{
    private static float[] Train(int n, string? codec, int steps, Action<long>? bytes = null)
    {
        var result = new float[n][];
        Ranks.Run(n, pg =>
        {
            using var m = new Sequential(
                new Linear(20, 16, generator: new Generator(1)),
                new ReLU(),
                new Linear(16, 5, generator: new Generator(101))
            );
            using var ddp = new DistributedDataParallel(
                m,
                pg,
                bucketBytes: 256,
                codec: codec == null ? null : HpcEngine.Compression.GradientCodec.Create(codec, seed: 2)
            );
            using var opt = new Sgd(m.Parameters(), 0.1);
            for (int s = 0; s < steps; s++)
            {
                using var x = Tensor.Randn([8, 20], DType.Float32, new Generator(50 + (ulong)s));
                using var y = Tensor.Randint(0, 5, [8], generator: new Generator(60 + (ulong)s));
                using (new TensorScope())
                    F.CrossEntropy(
                            ddp.Forward(x.Narrow(0, pg.Rank * (8 / n), 8 / n)),
                            y.Narrow(0, pg.Rank * (8 / n), 8 / n)
                        )
                        .Backward();
                ddp.Synchronize();
                opt.Step();
                opt.ZeroGrad();
            }
            if (pg.Rank == 0)
                bytes?.Invoke(ddp.BytesReduced);
            result[pg.Rank] = m.Parameters().SelectMany(p => p.ToArray<float>()).ToArray();
        });
        for (int r = 1; r < n; r++)
            Assert.That(result[r], Is.EqualTo(result[0]), $"rank {r} replica differs");
        return result[0];
    }

    [Test]
    public void Uncompressed_codec_matches_plain_ddp_and_fp16_stays_close()
    {
        var plain = Train(2, null, 3);
        var none = Train(2, "none", 3);
        for (int i = 0; i < plain.Length; i++)
            Assert.That(none[i], Is.EqualTo(plain[i]).Within(1e-6));
        var half = Train(2, "fp16", 3);
        for (int i = 0; i < plain.Length; i++)
            Assert.That(half[i], Is.EqualTo(plain[i]).Within(2e-3));
    }

    [Test]
    public void Top_k_sends_what_its_format_says_and_keeps_replicas_identical()
    {
        long plainBytes = 0,
            topkBytes = 0;
        Train(2, null, 2, b => plainBytes = b);
        Train(2, "topk:0.1", 2, b => topkBytes = b);
        // 420 parameters in 3 buckets; top-k sends 4 + 8·ceil(0.1·bucket) bytes per bucket per step.
        Assert.That(plainBytes, Is.EqualTo(2 * 4 * 421));
        Assert.That(topkBytes, Is.LessThan(plainBytes / 4));
    }

    [Test]
    public void PowerSgd_keeps_replicas_identical_and_sends_factors_only()
    {
        long plainBytes = 0,
            lowRankBytes = 0;
        Train(2, null, 3, b => plainBytes = b);
        Train(2, "powersgd:1", 3, b => lowRankBytes = b);
        // Buckets of 256 bytes: [5×16 weight (80) + 5 bias], [16 bias, 16×20 weight], [...]: the factors of the
        // matrices (r·(rows + cols)) and the vectors as they are.
        Assert.That(lowRankBytes, Is.LessThan(plainBytes / 2));
    }
}
