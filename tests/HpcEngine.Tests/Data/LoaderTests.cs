using HpcEngine.Data;

namespace HpcEngine.Tests.Data;

[TestFixture]
public class LoaderTests
{
    [TestCase(100, 4)]
    [TestCase(101, 4)]
    [TestCase(7, 3)]
    [TestCase(5, 8)]
    public void Shards_have_equal_length_and_cover_the_epoch(int n, int world)
    {
        var shards = Enumerable
            .Range(0, world)
            .Select(r => Sampler.Shard(n, r, world, shuffle: true, seed: 3, epoch: 1))
            .ToArray();
        Assert.That(shards.Select(s => s.Length).Distinct().Count(), Is.EqualTo(1), "equal-length shards");
        Assert.That(
            shards.SelectMany(s => s).Distinct().Order(),
            Is.EqualTo(Enumerable.Range(0, n)),
            "the union covers every sample"
        );
        Assert.That(shards.Sum(s => s.Length) - n, Is.LessThan(world), "at most world-1 samples repeat (padding)");
        if (n % world == 0)
            Assert.That(shards.SelectMany(s => s).Count(), Is.EqualTo(n), "disjoint when the world divides the epoch");
    }

    [TestCase(1000, 4, 3, 8, 5)] // 4 workers for 5 steps of 8, then 3
    [TestCase(1000, 3, 4, 10, 7)] // a worker joins
    [TestCase(999, 4, 2, 16, 11)]
    public void A_change_of_world_size_mid_epoch_sees_every_sample_exactly_once(
        int n,
        int before,
        int after,
        int batch,
        int steps
    )
    {
        // The first `steps` steps at `before` ranks, then the epoch's rest at `after` ranks from the global position.
        var seen = new List<int>();
        for (int r = 0; r < before; r++)
            seen.AddRange(Sampler.Shard(n, r, before, true, 5, 2).Take(steps * batch));
        int position = steps * batch * before;
        Assert.That(
            seen.Order(),
            Is.EqualTo(Sampler.Permutation(n, true, 5, 2)[..position].Order()),
            "a prefix of the epoch"
        );
        var rest = Enumerable
            .Range(0, after)
            .Select(r => Sampler.Shard(n, r, after, true, 5, 2, start: position))
            .ToArray();
        Assert.That(rest.Select(s => s.Length).Distinct().Count(), Is.EqualTo(1), "equal shards after the change");
        var all = seen.Concat(rest.SelectMany(s => s)).ToList();
        int padding = all.Count - n;
        Assert.That(padding, Is.InRange(0, after - 1), "only the end-of-epoch padding repeats");
        Assert.That(all.Distinct().Order(), Is.EqualTo(Enumerable.Range(0, n)), "none lost");
        Assert.That(all.Count - all.Distinct().Count(), Is.EqualTo(padding), "none twice, padding aside");
    }

    [Test]
    public void A_start_outside_the_epoch_is_refused()
    {
        Assert.That(Sampler.Shard(10, 0, 2, true, 1, 0, start: 10), Is.Empty);
        Assert.Throws<ArgumentOutOfRangeException>(() => Sampler.Shard(10, 0, 2, true, 1, 0, start: 11));
        Assert.Throws<ArgumentOutOfRangeException>(() => Sampler.Shard(10, 0, 2, true, 1, 0, start: -1));
    }

    [Test]
    public void Order_is_fixed_by_seed_and_epoch()
    {
        var first = Sampler.Permutation(50, true, 1, 0);
        Assert.That(
            Sampler.Permutation(50, true, 1, 0),
            Is.EqualTo(first),
            "the same (seed, epoch) gives the same order"
        );
        Assert.That(first.Order(), Is.EqualTo(Enumerable.Range(0, 50)), "a permutation");
        Assert.That(Sampler.Permutation(50, true, 1, 1), Is.Not.EqualTo(Sampler.Permutation(50, true, 1, 0)));
        Assert.That(Sampler.Permutation(50, true, 2, 0), Is.Not.EqualTo(Sampler.Permutation(50, true, 1, 0)));
        Assert.That(Sampler.Permutation(50, false, 1, 0), Is.EqualTo(Enumerable.Range(0, 50)));
    }

    private static ImageDataset Data(int n)
    {
        var px = new byte[n * 784];
        for (int i = 0; i < px.Length; i++)
            px[i] = (byte)(i * 7 % 256);
        return new ImageDataset(
            Tensor.FromBytes(px, DType.UInt8, n, 28, 28),
            Tensor.FromArray(Enumerable.Range(0, n).Select(i => (long)(i % 10)).ToArray()),
            10
        );
    }

    private static List<(float[] X, long[] Y)> Collect(DataLoader l, int epoch, int skip = 0) =>
        l.Epoch(epoch, skip)
            .Select(b =>
            {
                using (b)
                    return (b.Inputs.ToArray<float>(), b.Labels.ToArray<long>());
            })
            .ToList();

    [Test]
    public void Prefetching_gives_the_same_batches_and_resuming_skips_exactly()
    {
        using var ds = Data(103);
        var o = new DataLoaderOptions
        {
            BatchSize = 16,
            Seed = 5,
            RandomCropPadding = 2,
            HorizontalFlip = true,
        };
        var direct = Collect(new DataLoader(ds, o with { Prefetch = 0 }), 2);
        var prefetched = Collect(new DataLoader(ds, o with { Prefetch = 3 }), 2);
        Assert.That(direct, Has.Count.EqualTo(7));
        for (int i = 0; i < direct.Count; i++)
        {
            Assert.That(prefetched[i].X, Is.EqualTo(direct[i].X));
            Assert.That(prefetched[i].Y, Is.EqualTo(direct[i].Y));
        }
        var resumed = Collect(new DataLoader(ds, o), 2, skip: 4);
        Assert.That(resumed, Has.Count.EqualTo(3));
        Assert.That(resumed[0].X, Is.EqualTo(direct[4].X), "batch 4 is the same whether reached or resumed at");
        Assert.That(direct[^1].Y, Has.Length.EqualTo(103 - 6 * 16), "the last batch keeps the remainder");
    }

    [Test]
    public void Normalisation_uses_mean_and_std()
    {
        using var ds = new ImageDataset(
            Tensor.FromBytes(Enumerable.Repeat((byte)255, 784).ToArray(), DType.UInt8, 1, 28, 28),
            Tensor.FromArray([3L]),
            10
        );
        var b = new DataLoader(
            ds,
            new DataLoaderOptions
            {
                BatchSize = 1,
                Shuffle = false,
                Mean = 0.5,
                Std = 0.25,
                Prefetch = 0,
            }
        ).Epoch(0).Single();
        Assert.That(b.Inputs.ToArray<float>(), Is.All.EqualTo(2f).Within(1e-5));
        Assert.That(b.Inputs.ShapeArray, Is.EqualTo(new[] { 1, 1, 28, 28 }));
    }

    [Test]
    public void Abandoning_an_epoch_midway_stops_the_prefetcher()
    {
        using var ds = Data(200);
        var loader = new DataLoader(ds, new DataLoaderOptions { BatchSize = 10, Prefetch = 2 });
        long before = LiveTensors.Count;
        foreach (var b in loader.Epoch(0))
        {
            b.Dispose();
            break;
        }
        Assert.That(
            LiveTensors.Count,
            Is.EqualTo(before),
            "batches prepared ahead are disposed when the consumer stops"
        );
    }
}
