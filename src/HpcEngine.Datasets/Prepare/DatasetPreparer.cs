using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>What to prepare and how.</summary>
public sealed record PrepareOptions
{
    /// <summary>The raw data.</summary>
    public required DataSource Source { get; init; }

    /// <summary>The dataset directory to write.</summary>
    public required string OutDir { get; init; }

    /// <summary>The pipeline (null: the source's defaults).</summary>
    public PipelineSpec? Spec { get; init; }

    /// <summary>Threads that decode, encode and write (the output does not depend on it).</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>Progress lines (null: quiet).</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>What a preparation did.</summary>
public sealed record PrepareResult(bool UpToDate, DatasetManifest Manifest, double Seconds, double SamplesPerSecond);

/// <summary>Prepares raw data (<see cref="DataSource"/>) into a sharded dataset directory: samples decoded or encoded
/// over <see cref="PrepareOptions.Workers"/> threads, statistics computed over the training split, fixed-size shards
/// (<see cref="ShardFile"/>) written in parallel, and the manifest written last, atomically. The result is cached by
/// (format version, source content hash, resolved spec): a second run on unchanged input does nothing. The output is
/// byte-identical whatever the number of workers.</summary>
public static class DatasetPreparer
{
    /// <summary>Prepares, or finds the dataset up to date.</summary>
    public static PrepareResult Prepare(PrepareOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Workers, 1);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var source = options.Source;
        var spec = (options.Spec ?? new PipelineSpec()).Resolve(source.Kind, source.ToString());
        var files = source.Files();
        if (files.Count == 0)
            throw new DatasetException(source.Path, DatasetProblem.NoSamples, $"no {source.Kind} input files found");
        string contentHash = DataSource.ContentHash(files);
        var specJson = JsonSerializer.SerializeToElement(spec);
        string key = CacheKey(source.Kind, contentHash, specJson);
        if (UpToDate(options.OutDir, key) is { } current)
        {
            options.Log?.Invoke($"{options.OutDir}: up to date (source and spec unchanged)");
            return new PrepareResult(true, current, clock.Elapsed.TotalSeconds, 0);
        }
        CheckOutDir(options.OutDir);
        var samples = source.Kind switch
        {
            SourceKind.Idx => IdxSource.Read(source, spec, options.Workers),
            SourceKind.Images => ImageTreeSource.Read(source, spec, options.Workers, options.Log),
            _ => CsvSource.Read(source, spec, options.Workers, options.Log),
        };
        foreach (var (name, split) in new[] { ("train", samples.Train), ("test", samples.Test) })
            if (split.Count == 0)
                throw new DatasetException(
                    source.Path,
                    DatasetProblem.NoSamples,
                    $"the {name} split has no samples{(samples.Skipped.Count > 0 ? $" ({samples.Skipped.Count} inputs were skipped)" : "")}"
                );
        var manifest = Write(options, spec, specJson, key, contentHash, files.Count, samples);
        double seconds = clock.Elapsed.TotalSeconds;
        int total = samples.Train.Count + samples.Test.Count;
        options.Log?.Invoke(
            $"{options.OutDir}: {samples.Train.Count} train + {samples.Test.Count} test samples in "
                + $"{manifest.Splits.Values.Sum(s => s.Shards.Count)} shards, {seconds:F1} s ({total / seconds:F0} samples/s)"
                + (samples.Skipped.Count > 0 ? $"; {samples.Skipped.Count} inputs skipped" : "")
        );
        return new PrepareResult(false, manifest, seconds, total / seconds);
    }

    private static string CacheKey(SourceKind kind, string contentHash, JsonElement spec)
    {
        var text = $"{DatasetManifest.CurrentVersion}\n{kind}\n{contentHash}\n{spec.GetRawText()}";
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text))).ToLowerInvariant();
    }

    private static DatasetManifest? UpToDate(string dir, string key)
    {
        if (!File.Exists(Path.Combine(dir, DatasetManifest.FileName)))
            return null;
        try
        {
            var m = DatasetManifest.Read(dir);
            bool intact = m
                .Splits.Values.SelectMany(s => s.Shards)
                .All(s => new FileInfo(Path.Combine(dir, s.File)) is { Exists: true } f && f.Length == s.Bytes);
            return m.CacheKey == key && intact ? m : null;
        }
        catch (DatasetException)
        {
            return null; // unreadable: rebuilt
        }
    }

    /// <summary>A directory that holds anything but a dataset is not written into.</summary>
    private static void CheckOutDir(string dir)
    {
        if (!Directory.Exists(dir))
            return;
        var foreign = Directory
            .EnumerateFileSystemEntries(dir)
            .Select(Path.GetFileName)
            .FirstOrDefault(n =>
                !(
                    n == DatasetManifest.FileName
                    || n!.EndsWith(".shard", StringComparison.Ordinal)
                    || n.EndsWith(".partial", StringComparison.Ordinal)
                    || n.StartsWith(DatasetManifest.FileName, StringComparison.Ordinal)
                )
            );
        if (foreign != null)
            throw new DatasetException(
                dir,
                DatasetProblem.BadSource,
                $"the output directory holds '{foreign}', which is not part of a dataset: give an empty or new directory"
            );
    }

    private static DatasetManifest Write(
        PrepareOptions options,
        PipelineSpec spec,
        JsonElement specJson,
        string key,
        string contentHash,
        int fileCount,
        SourceSamples samples
    )
    {
        string dir = options.OutDir;
        Directory.CreateDirectory(dir);
        // The old manifest goes first: from here until the new one lands, the directory is not a dataset.
        File.Delete(Path.Combine(dir, DatasetManifest.FileName));
        foreach (
            var old in Directory
                .EnumerateFiles(dir)
                .Where(f =>
                    f.EndsWith(".shard", StringComparison.Ordinal) || f.EndsWith(".partial", StringComparison.Ordinal)
                )
        )
            File.Delete(old);
        try
        {
            int sampleBytes = samples.Train.Samples.Length / samples.Train.Count;
            uint type = samples.Feature.DType == "uint8" ? ShardFile.UInt8 : ShardFile.Float32;
            int perShard = (int)Math.Clamp(spec.ShardBytes!.Value / (sampleBytes + 4), 1, int.MaxValue);
            var splits = new Dictionary<string, SplitEntry>();
            foreach (var (name, split) in new[] { ("train", samples.Train), ("test", samples.Test) })
            {
                int shards = (split.Count + perShard - 1) / perShard;
                var entries = new ShardEntry[shards];
                var progress = new Progress($"write {name}", split.Count, options.Log);
                Workers.For(shards, options.Workers, k =>
                {
                    int first = k * perShard,
                        n = Math.Min(perShard, split.Count - first);
                    entries[k] = ShardFile.Write(
                        Path.Combine(dir, $"{name}-{k:D5}.shard"),
                        type,
                        sampleBytes,
                        split.Samples.AsSpan(first * sampleBytes, n * sampleBytes),
                        split.Labels.AsSpan(first, n),
                        first
                    );
                    progress.Add(n);
                });
                var counts = new int[samples.Classes.Count];
                foreach (int l in split.Labels)
                    counts[l]++;
                splits[name] = new SplitEntry
                {
                    Samples = split.Count,
                    ClassCounts = counts,
                    Shards = entries,
                };
            }
            var manifest = new DatasetManifest
            {
                CacheKey = key,
                Source = new SourceEntry
                {
                    Kind = options.Source.Kind.ToString().ToLowerInvariant(),
                    Path = options.Source.Path,
                    ContentSha256 = contentHash,
                    Files = fileCount,
                },
                Spec = specJson,
                Feature = samples.Feature,
                Classes = samples.Classes,
                Preprocessing = samples.Preprocessing,
                Splits = splits,
                Skipped = samples.Skipped,
            };
            string temp = Path.Combine(dir, DatasetManifest.FileName + ".partial");
            File.WriteAllText(temp, manifest.ToJson());
            File.Move(temp, Path.Combine(dir, DatasetManifest.FileName), overwrite: true);
            return manifest;
        }
        catch
        {
            // Nothing half-written survives a failure.
            foreach (
                var f in Directory
                    .EnumerateFiles(dir)
                    .Where(f =>
                        f.EndsWith(".shard", StringComparison.Ordinal)
                        || f.EndsWith(".partial", StringComparison.Ordinal)
                    )
            )
                File.Delete(f);
            throw;
        }
    }
}
