using HpcEngine.Data;
using HpcEngine.Data.Sharded;
using HpcEngine.Datasets.Prepare;

namespace HpcEngine.Tests.Data.Prepared;

/// <summary>The shard format and its loader: round trip, the epoch order, the global sample cursor across a change of
/// world size, and every way a dataset on disk can be damaged.</summary>
public class ShardedDatasetTests
{
    private string _dir = "";
    private string _data = "";

    [SetUp]
    public void SetUp()
    {
        _dir = TestSupport.TempDir("shards");
        _data = Path.Combine(_dir, "idx");
        Directory.CreateDirectory(_data);
        TestSupport.WriteTinyFashionMnist(_data, 500, 100);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private string Prepare(long shardBytes = 64 << 20, string name = "ds", int workers = 1)
    {
        string outDir = Path.Combine(_dir, name);
        DatasetPreparer.Prepare(
            new PrepareOptions
            {
                Source = DataSource.Parse("idx:" + _data),
                OutDir = outDir,
                Spec = new PipelineSpec { ShardBytes = shardBytes },
                Workers = workers,
            }
        );
        return outDir;
    }

    [Test]
    public void Shards_hold_the_idx_samples_and_labels_byte_for_byte()
    {
        string ds = Prepare(shardBytes: 40_000); // 50 samples of 788 bytes a shard: 10 train shards
        var (train, test) = FashionMnist.Load(_data);
        using (train)
        using (test)
        using (var sharded = ShardedDataset.Open(ds))
        {
            Assert.That(sharded.Manifest.Splits["train"].Shards, Has.Count.EqualTo(10));
            Assert.That(sharded.Count, Is.EqualTo(500));
            Assert.That(sharded.SampleShape, Is.EqualTo(new[] { 1, 28, 28 }));
            for (int i = 0; i < sharded.Count; i++)
            {
                Assert.That(sharded.Sample(i).SequenceEqual(train.Sample(i)), $"sample {i}");
                Assert.That(sharded.Label(i), Is.EqualTo(train.Label(i)), $"label {i}");
            }
        }
    }

    [Test]
    public void The_epoch_order_is_a_permutation_fixed_by_seed_and_epoch_and_equals_the_in_memory_order_for_one_shard()
    {
        using var many = ShardedDataset.Open(Prepare(shardBytes: 40_000, name: "many"), shuffleWindow: 64);
        var a = many.Order(true, 7, 3);
        Assert.That(a.Order(), Is.EqualTo(Enumerable.Range(0, 500)));
        Assert.That(many.Order(true, 7, 3), Is.EqualTo(a));
        Assert.That(many.Order(true, 7, 4), Is.Not.EqualTo(a));
        Assert.That(many.Order(false, 7, 3), Is.EqualTo(Enumerable.Range(0, 500)));
        using var one = ShardedDataset.Open(Prepare(name: "one"));
        Assert.That(one.Order(true, 7, 3), Is.EqualTo(Sampler.Permutation(500, true, 7, 3)));
    }

    [Test]
    public void A_resume_at_another_world_size_sees_every_sample_of_the_epoch_once()
    {
        using var data = ShardedDataset.Open(Prepare(shardBytes: 40_000), shuffleWindow: 100);
        const int batch = 10;
        var seen = new List<long>();
        var order = data.Order(true, 1, 0);
        // 4 steps at 3 ranks consume 4·10·3 = 120 samples; the rest at 2 ranks from the global cursor.
        for (int rank = 0; rank < 3; rank++)
            seen.AddRange(Sampler.Deal(order, rank, 3).Take(4 * batch).Select(i => (long)i));
        for (int rank = 0; rank < 2; rank++)
            seen.AddRange(Sampler.Deal(order, rank, 2, start: 120).Select(i => (long)i));
        Assert.That(seen, Has.Count.EqualTo(500)); // 380 left over 2 ranks: no padding
        Assert.That(seen.Distinct().Count(), Is.EqualTo(500));
    }

    [Test]
    public void A_changed_byte_in_a_shard_is_named_at_load_and_by_verify()
    {
        string ds = Prepare(shardBytes: 40_000);
        string shard = Path.Combine(ds, "train-00003.shard");
        var bytes = File.ReadAllBytes(shard);
        bytes[1000] ^= 0xFF;
        File.WriteAllBytes(shard, bytes);
        var e = Assert.Throws<DatasetException>(() => ShardedDataset.Open(ds).Dispose())!;
        Assert.That(e.Problem, Is.EqualTo(DatasetProblem.ChecksumMismatch));
        Assert.That(e.Message, Does.Contain("train-00003.shard").And.Contain("SHA-256"));
        var v = Assert.Throws<DatasetException>(() => DatasetInspection.Of(ds, verify: true))!;
        Assert.That(v.Where, Does.EndWith("train-00003.shard"));
        Assert.DoesNotThrow(() => DatasetInspection.Of(ds, verify: false)); // headers intact: only a re-hash finds it
    }

    [Test]
    public void A_truncated_or_missing_shard_is_named()
    {
        string ds = Prepare(shardBytes: 40_000);
        string shard = Path.Combine(ds, "test-00001.shard");
        File.WriteAllBytes(shard, File.ReadAllBytes(shard)[..500]);
        var e = Assert.Throws<DatasetException>(() => ShardedDataset.Open(ds, "test").Dispose())!;
        Assert.That(e.Problem, Is.EqualTo(DatasetProblem.CorruptShard));
        Assert.That(e.Message, Does.Contain("test-00001.shard").And.Contain("bytes"));
        File.Delete(shard);
        e = Assert.Throws<DatasetException>(() => ShardedDataset.Open(ds, "test").Dispose())!;
        Assert.That(e.Message, Does.Contain("test-00001.shard").And.Contain("missing"));
    }

    [Test]
    public void A_missing_or_future_manifest_is_a_typed_error()
    {
        var e = Assert.Throws<DatasetException>(() => ShardedDataset.Open(_dir).Dispose())!;
        Assert.That(e.Problem, Is.EqualTo(DatasetProblem.MissingManifest));
        Assert.That(e.Message, Does.Contain("manifest.json").And.Contain("hpcengine data prepare"));
        string ds = Prepare();
        string path = Path.Combine(ds, DatasetManifest.FileName);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"format_version\": 1", "\"format_version\": 9"));
        e = Assert.Throws<DatasetException>(() => ShardedDataset.Open(ds).Dispose())!;
        Assert.That(e.Problem, Is.EqualTo(DatasetProblem.FutureVersion));
        Assert.That(e.Message, Does.Contain("format version 9").And.Contain("upgrade"));
    }

    [Test]
    public void The_loader_streams_sharded_samples_as_the_in_memory_path_does()
    {
        using var sharded = ShardedDataset.Open(Prepare()); // one shard, one window: the in-memory order
        var (train, test) = FashionMnist.Load(_data);
        using (train)
        using (test)
        {
            var o = new DataLoaderOptions
            {
                BatchSize = 64,
                Shuffle = true,
                Seed = 3,
            };
            using var memory = new ImageDataset(train.Images.Clone(), train.Labels.Clone(), 10, sharded.Normalization);
            static List<float[]> All(DataLoader l) =>
                l.Epoch(1)
                    .Select(b =>
                    {
                        using (b)
                            return b
                                .Inputs.ToArray<float>()
                                .Concat(b.Labels.ToArray<long>().Select(x => (float)x))
                                .ToArray();
                    })
                    .ToList();
            var inMemory = All(new DataLoader(memory, o));
            var streamed = All(new DataLoader(sharded, o));
            Assert.That(streamed, Has.Count.EqualTo(8));
            Assert.That(streamed.SelectMany(x => x), Is.EqualTo(inMemory.SelectMany(x => x)));
        }
    }
}
