using System.Text.Json;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>Reads a class-per-folder image tree: DIR/CLASS/*.png|jpg (split by the spec's fraction), or DIR/train/CLASS
/// and DIR/test/CLASS (the given split). Class names are the training folders' names in ordinal order. Images are
/// decoded in parallel, each into its own slot, so the output does not depend on the number of workers.</summary>
internal static class ImageTreeSource
{
    public static SourceSamples Read(DataSource source, PipelineSpec spec, int workers, Action<string>? log)
    {
        var pre = ImagePreprocessor.From(spec);
        bool given = spec.Split!.Mode == "given";
        string trainRoot = given ? Path.Combine(source.Path, "train") : source.Path;
        if (given && (!Directory.Exists(trainRoot) || !Directory.Exists(Path.Combine(source.Path, "test"))))
            throw new DatasetException(
                source.Path,
                DatasetProblem.BadSource,
                "the given split needs train/ and test/ folders, each with a folder per class"
            );
        var classes = Directory
            .GetDirectories(trainRoot)
            .Select(d => Path.GetFileName(d))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (classes.Count < 2)
            throw new DatasetException(
                trainRoot,
                DatasetProblem.EmptyClass,
                $"{classes.Count} class folder(s): an image tree holds a folder per class, at least 2"
            );
        var skipped = new List<SkippedEntry>();
        (string File, int Label)[] List(string root)
        {
            var items = new List<(string, int)>();
            foreach (var dir in Directory.GetDirectories(root).Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileName(dir);
                int label = classes.IndexOf(name!);
                if (label < 0)
                    throw new DatasetException(
                        dir,
                        DatasetProblem.BadSource,
                        $"class '{name}' is not among the training classes"
                    );
                var files = Directory
                    .EnumerateFiles(dir, "*", SearchOption.AllDirectories)
                    .Where(f => DataSource.ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal)
                    .ToList();
                if (files.Count == 0)
                    throw new DatasetException(
                        dir,
                        DatasetProblem.EmptyClass,
                        "the class folder holds no PNG or JPEG image: add images or remove the folder"
                    );
                items.AddRange(files.Select(f => (f, label)));
            }
            return [.. items];
        }
        (string File, int Label)[] trainItems,
            testItems;
        if (given)
        {
            trainItems = List(trainRoot);
            testItems = List(Path.Combine(source.Path, "test"));
        }
        else
        {
            var all = List(trainRoot);
            var (tr, te) = Splitting.Fraction(all.Length, spec.Split);
            trainItems = tr.Select(i => all[i]).ToArray();
            testItems = te.Select(i => all[i]).ToArray();
        }
        var progress = new Progress("decode", trainItems.Length + testItems.Length, log);
        var train = Decode(trainItems, pre, spec.OnError == "skip", workers, progress, skipped);
        var test = Decode(testItems, pre, spec.OnError == "skip", workers, progress, skipped);
        var (mean, std) = spec.Has("normalize")
            ? Splitting.PixelStatistics(train, pre.Channels, workers)
            : (Enumerable.Repeat(0.0, pre.Channels).ToArray(), Enumerable.Repeat(1.0, pre.Channels).ToArray());
        var (h, w) = pre.Size;
        var feature = new FeatureEntry
        {
            Kind = "image",
            Shape = [pre.Channels, h, w],
            DType = "uint8",
            Mean = mean,
            Std = std,
        };
        var preprocessing = JsonSerializer.SerializeToElement(
            new Dictionary<string, object>
            {
                ["kind"] = "image",
                ["image"] = pre,
                ["mean"] = mean,
                ["std"] = std,
            }
        );
        return new SourceSamples(train, test, feature, classes, preprocessing, skipped);
    }

    private static SplitSamples Decode(
        (string File, int Label)[] items,
        ImagePreprocessor pre,
        bool skip,
        int workers,
        Progress progress,
        List<SkippedEntry> skipped
    )
    {
        var samples = new byte[items.Length][];
        var errors = new DatasetException?[items.Length];
        Workers.For(items.Length, workers, i =>
        {
            try
            {
                samples[i] = pre.Process(File.ReadAllBytes(items[i].File), items[i].File);
            }
            catch (DatasetException e)
            {
                errors[i] = e;
            }
            progress.Add(1);
        });
        // In input order, so the first error reported and the skip list do not depend on the threads.
        int bytes = pre.SampleBytes;
        var kept = new List<int>();
        for (int i = 0; i < items.Length; i++)
        {
            if (errors[i] is { } e)
            {
                if (!skip)
                    throw new DatasetException(
                        items[i].File,
                        DatasetProblem.CorruptImage,
                        e.Detail + " (set on_error to skip to leave such images out)",
                        e
                    );
                skipped.Add(new SkippedEntry { Item = items[i].File, Reason = e.Detail });
                continue;
            }
            kept.Add(i);
        }
        var all = new byte[kept.Count * (long)bytes];
        for (int k = 0; k < kept.Count; k++)
            samples[kept[k]].CopyTo(all.AsSpan(k * bytes));
        return new SplitSamples(all, kept.Select(i => items[i].Label).ToArray());
    }
}
