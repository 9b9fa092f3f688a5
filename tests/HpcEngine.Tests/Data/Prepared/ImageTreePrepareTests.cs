using HpcEngine.Data.Sharded;
using HpcEngine.Datasets.Prepare;
using SkiaSharp;

namespace HpcEngine.Tests.Data.Prepared;

/// <summary>Preparing a class-per-folder image tree: decoding, resizing, determinism over workers, the cache, and the
/// bad inputs (a corrupt image, an empty class folder), each leaving nothing half-written.</summary>
public class ImageTreePrepareTests
{
    private string _dir = "";
    private string _tree = "";

    [SetUp]
    public void SetUp()
    {
        _dir = TestSupport.TempDir("images");
        _tree = Path.Combine(_dir, "tree");
        PreparedTestData.WriteImageTree(_tree, perClass: 30);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    private static PipelineSpec Spec(string onError = "fail") =>
        new()
        {
            Channels = 3,
            OnError = onError,
            ShardBytes = 8 << 10,
            Split = new SplitSpec { TestFraction = 0.2, Seed = 5 },
            Transforms =
            [
                new TransformStep
                {
                    Op = "resize",
                    Size = [20, 20],
                    KeepAspect = true,
                },
                new TransformStep { Op = "center-crop", Size = [16, 16] },
                new TransformStep { Op = "to-float" },
                new TransformStep { Op = "normalize" },
            ],
        };

    private PrepareResult Prepare(string outName, int workers = 1, PipelineSpec? spec = null) =>
        DatasetPreparer.Prepare(
            new PrepareOptions
            {
                Source = DataSource.Parse("images:" + _tree),
                OutDir = Path.Combine(_dir, outName),
                Spec = spec ?? Spec(),
                Workers = workers,
            }
        );

    [Test]
    public void An_image_tree_becomes_rgb_samples_of_the_spec_size_with_its_folder_classes()
    {
        var r = Prepare("ds");
        var m = r.Manifest;
        Assert.That(m.Classes, Is.EqualTo(PreparedTestData.ImageClasses));
        Assert.That(m.Feature.Shape, Is.EqualTo(new[] { 3, 16, 16 }));
        Assert.That(m.Splits["train"].Samples + m.Splits["test"].Samples, Is.EqualTo(90));
        Assert.That(m.Splits["test"].Samples, Is.EqualTo(18));
        Assert.That(m.Splits["train"].Shards.Count, Is.GreaterThan(1));
        using var data = ShardedDataset.Open(Path.Combine(_dir, "ds"));
        // The folder's colour dominates its channel: the class can be read off the channel means.
        for (int i = 0; i < data.Count; i++)
        {
            var s = data.Sample(i).ToArray();
            var means = Enumerable.Range(0, 3).Select(c => s.Skip(c * 256).Take(256).Average(b => b)).ToArray();
            int dominant = Array.IndexOf(means, means.Max()); // R, G, B
            string cls = m.Classes[(int)data.Label(i)];
            Assert.That(
                dominant,
                Is.EqualTo(
                    cls switch
                    {
                        "red" => 0,
                        "green" => 1,
                        _ => 2,
                    }
                ),
                $"sample {i} ({cls})"
            );
        }
        // Normalisation statistics from the training split, per channel.
        Assert.That(m.Feature.Mean, Has.Count.EqualTo(3));
        Assert.That(m.Feature.Std!.All(s => s > 0.05 && s < 0.6));
    }

    [Test]
    public void The_shards_are_byte_identical_whatever_the_workers_and_a_rerun_is_up_to_date()
    {
        var one = Prepare("w1", workers: 1);
        var two = Prepare("w2", workers: 2);
        Assert.That(
            two.Manifest.Splits["train"].Shards.Select(s => s.Sha256),
            Is.EqualTo(one.Manifest.Splits["train"].Shards.Select(s => s.Sha256))
        );
        Assert.That(two.Manifest.CacheKey, Is.EqualTo(one.Manifest.CacheKey));
        var again = Prepare("w1");
        Assert.That(again.UpToDate, Is.True);
        // A changed spec rebuilds; so does a changed input.
        var otherSpec = Prepare("w1", spec: Spec() with { Channels = 1 });
        Assert.That(otherSpec.UpToDate, Is.False);
        Assert.That(otherSpec.Manifest.Feature.Shape, Is.EqualTo(new[] { 1, 16, 16 }));
        File.Copy(Path.Combine(_tree, "red", "img-000.png"), Path.Combine(_tree, "red", "img-999.png"));
        var changed = Prepare("w1", spec: Spec() with { Channels = 1 });
        Assert.That(changed.UpToDate, Is.False);
        Assert.That(changed.Manifest.Splits.Values.Sum(s => s.Samples), Is.EqualTo(91));
    }

    [Test]
    public void A_corrupt_image_is_named_and_nothing_is_written_or_with_skip_it_is_counted()
    {
        string bad = Path.Combine(_tree, "green", "img-007.png");
        var bytes = File.ReadAllBytes(bad);
        File.WriteAllBytes(bad, bytes[..(bytes.Length / 2)]); // truncated
        File.WriteAllText(Path.Combine(_tree, "blue", "notes.png"), "not an image");
        var e = Assert.Throws<DatasetException>(() => Prepare("ds"))!;
        Assert.That(e.Problem, Is.EqualTo(DatasetProblem.CorruptImage));
        Assert.That(Path.GetFileName(e.Where), Is.AnyOf("notes.png", "img-007.png"));
        Assert.That(e.Message, Does.Contain("on_error"));
        string outDir = Path.Combine(_dir, "ds");
        Assert.That(
            !Directory.Exists(outDir) || !Directory.EnumerateFileSystemEntries(outDir).Any(),
            "nothing written"
        );

        var r = Prepare("ds", spec: Spec("skip"));
        Assert.That(
            r.Manifest.Skipped.Select(s => Path.GetFileName(s.Item)),
            Is.EquivalentTo(new[] { "notes.png", "img-007.png" })
        );
        Assert.That(r.Manifest.Skipped.First(s => s.Item.EndsWith("img-007.png")).Reason, Does.Contain("truncated"));
        Assert.That(r.Manifest.Splits.Values.Sum(s => s.Samples), Is.EqualTo(89));
    }

    [Test]
    public void A_bad_input_on_rebuild_leaves_the_previous_dataset_whole()
    {
        Prepare("ds");
        string outDir = Path.Combine(_dir, "ds");
        File.WriteAllText(Path.Combine(_tree, "red", "zzz.png"), "garbage");
        Assert.Throws<DatasetException>(() => Prepare("ds"));
        // The failure came before anything was written: the earlier dataset is still complete and intact.
        Assert.DoesNotThrow(() => DatasetInspection.Of(outDir, verify: true));
    }

    [Test]
    public void A_failure_while_writing_shards_leaves_no_manifest_and_no_shard()
    {
        Prepare("ds");
        string outDir = Path.Combine(_dir, "ds");
        // A directory where a shard's temporary file must go makes that write fail half-way through the shards.
        Directory.CreateDirectory(Path.Combine(outDir, "train-00002.shard.partial"));
        Assert.Throws<UnauthorizedAccessException>(() => Prepare("ds", spec: Spec() with { Channels = 1 }));
        Assert.That(File.Exists(Path.Combine(outDir, DatasetManifest.FileName)), Is.False);
        Assert.That(Directory.GetFiles(outDir, "*.shard"), Is.Empty);
        var e = Assert.Throws<DatasetException>(() => ShardedDataset.Open(outDir).Dispose())!;
        Assert.That(e.Problem, Is.EqualTo(DatasetProblem.MissingManifest));
    }

    [Test]
    public void An_empty_class_folder_and_a_foreign_output_directory_are_refused()
    {
        Directory.CreateDirectory(Path.Combine(_tree, "yellow"));
        var e = Assert.Throws<DatasetException>(() => Prepare("ds"))!;
        Assert.That(e.Problem, Is.EqualTo(DatasetProblem.EmptyClass));
        Assert.That(e.Where, Does.EndWith("yellow"));
        Directory.Delete(Path.Combine(_tree, "yellow"));
        string outDir = Path.Combine(_dir, "mine");
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "thesis.tex"), "precious");
        e = Assert.Throws<DatasetException>(() => Prepare("mine"))!;
        Assert.That(e.Message, Does.Contain("thesis.tex"));
        Assert.That(File.ReadAllText(Path.Combine(outDir, "thesis.tex")), Is.EqualTo("precious"));
    }

    [Test]
    public void Raw_images_through_the_recorded_preprocessing_give_the_prepared_samples_exactly()
    {
        var spec = Spec() with { Split = new SplitSpec { Mode = "given" } };
        foreach (var split in new[] { "train", "test" })
            PreparedTestData.WriteImageTree(Path.Combine(_dir, "given", split), perClass: 4, seed: split.Length);
        var r = DatasetPreparer.Prepare(
            new PrepareOptions
            {
                Source = DataSource.Parse("images:" + Path.Combine(_dir, "given")),
                OutDir = Path.Combine(_dir, "g"),
                Spec = spec,
            }
        );
        Assert.That(r.Manifest.Splits["test"].Samples, Is.EqualTo(12));
        using var test = ShardedDataset.Open(Path.Combine(_dir, "g"), "test");
        var files = PreparedTestData
            .ImageClasses.SelectMany(c =>
                Directory.GetFiles(Path.Combine(_dir, "given", "test", c)).Order(StringComparer.Ordinal)
            )
            .ToList();
        using var raw = RawInputs.FromJson(test.Preprocessing).Images(files, 3);
        for (int i = 0; i < files.Count; i++)
            Assert.That(raw.Sample(i).SequenceEqual(test.Sample(i)), $"{files[i]}");
        Assert.That(raw.Normalization!.Mean, Is.EqualTo(test.Normalization!.Mean));
    }

    [Test]
    public void Spec_mistakes_are_named()
    {
        var e = Assert.Throws<DatasetException>(() =>
            Prepare(
                "ds",
                spec: Spec() with
                {
                    Transforms =
                    [
                        new TransformStep
                        {
                            Op = "resize",
                            Size = [8, 8],
                            KeepAspect = true,
                        },
                    ],
                }
            )
        )!;
        Assert.That(e.Message, Does.Contain("center-crop"));
        e = Assert.Throws<DatasetException>(() =>
            Prepare("ds", spec: Spec() with { Transforms = [new TransformStep { Op = "one-hot" }] })
        )!;
        Assert.That(e.Message, Does.Contain("'one-hot' does not apply to a images source"));
        string file = Path.Combine(_dir, "spec.json");
        File.WriteAllText(file, "{\"channels\": 3, \"tranforms\": []}");
        e = Assert.Throws<DatasetException>(() => PipelineSpec.Load(file))!;
        Assert.That(e.Message, Does.Contain("tranforms").And.Contain("spec.json"));
    }
}
