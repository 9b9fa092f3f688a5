using System.Text.Json;
using System.Text.Json.Serialization;

namespace HpcEngine.Data.Sharded;

/// <summary>One shard file of a split: its name in the dataset directory, sample count, size and SHA-256.</summary>
public sealed record ShardEntry
{
    /// <summary>The file name, relative to the dataset directory.</summary>
    [JsonPropertyName("file")]
    public string File { get; init; } = "";

    /// <summary>Samples in the shard.</summary>
    [JsonPropertyName("samples")]
    public int Samples { get; init; }

    /// <summary>The file's size in bytes.</summary>
    [JsonPropertyName("bytes")]
    public long Bytes { get; init; }

    /// <summary>SHA-256 of the whole file, lowercase hex.</summary>
    [JsonPropertyName("sha256")]
    public string Sha256 { get; init; } = "";
}

/// <summary>A split (train or test): its samples, their class balance and its shards in order.</summary>
public sealed record SplitEntry
{
    /// <summary>Samples in the split.</summary>
    [JsonPropertyName("samples")]
    public int Samples { get; init; }

    /// <summary>Samples per class, by label.</summary>
    [JsonPropertyName("class_counts")]
    public IReadOnlyList<int> ClassCounts { get; init; } = [];

    /// <summary>The shards; sample i of the split is in the shard whose running count passes i.</summary>
    [JsonPropertyName("shards")]
    public IReadOnlyList<ShardEntry> Shards { get; init; } = [];
}

/// <summary>What one sample is.</summary>
public sealed record FeatureEntry
{
    /// <summary>"image" (uint8 pixels [C, H, W]) or "tabular" (float32 features [F]).</summary>
    [JsonPropertyName("kind")]
    public string Kind { get; init; } = "image";

    /// <summary>The sample's shape.</summary>
    [JsonPropertyName("shape")]
    public IReadOnlyList<int> Shape { get; init; } = [];

    /// <summary>"uint8" or "float32".</summary>
    [JsonPropertyName("dtype")]
    public string DType { get; init; } = "uint8";

    /// <summary>Images: each channel's mean of x/255 over the training split (the loader normalises with it).</summary>
    [JsonPropertyName("mean")]
    public IReadOnlyList<double>? Mean { get; init; }

    /// <summary>Images: each channel's standard deviation of x/255 over the training split.</summary>
    [JsonPropertyName("std")]
    public IReadOnlyList<double>? Std { get; init; }

    /// <summary>Tabular: the name of each feature (a column, a one-hot category, a missing indicator).</summary>
    [JsonPropertyName("names")]
    public IReadOnlyList<string>? Names { get; init; }
}

/// <summary>Where the data came from: the source as given and the SHA-256 of its content.</summary>
public sealed record SourceEntry
{
    /// <summary>"idx", "images" or "csv".</summary>
    [JsonPropertyName("kind")]
    public string Kind { get; init; } = "";

    /// <summary>The path as given.</summary>
    [JsonPropertyName("path")]
    public string Path { get; init; } = "";

    /// <summary>SHA-256 over the source's files (relative names and bytes), lowercase hex.</summary>
    [JsonPropertyName("content_sha256")]
    public string ContentSha256 { get; init; } = "";

    /// <summary>How many files were read.</summary>
    [JsonPropertyName("files")]
    public int Files { get; init; }
}

/// <summary>An input the preparation skipped (<c>--on-error skip</c>) and why.</summary>
public sealed record SkippedEntry
{
    /// <summary>The file (or file:line).</summary>
    [JsonPropertyName("item")]
    public string Item { get; init; } = "";

    /// <summary>Why it was skipped.</summary>
    [JsonPropertyName("reason")]
    public string Reason { get; init; } = "";
}

/// <summary>The manifest of a prepared dataset (manifest.json, docs/DATASETS.md): format version, source and its
/// content hash, the spec, the sample's shape and type, class names, the preprocessing with its statistics, each
/// split's shards with their SHA-256, and what was skipped. It is written last and atomically, so a directory with a
/// manifest holds a complete dataset.</summary>
public sealed record DatasetManifest
{
    /// <summary>The manifest's file name in a dataset directory.</summary>
    public const string FileName = "manifest.json";

    /// <summary>The format this build writes and the newest it reads.</summary>
    public const int CurrentVersion = 1;

    /// <summary>Always "hpcengine-dataset".</summary>
    [JsonPropertyName("format")]
    public string Format { get; init; } = "hpcengine-dataset";

    /// <summary>The format version (see <see cref="CurrentVersion"/>).</summary>
    [JsonPropertyName("format_version")]
    public int FormatVersion { get; init; } = CurrentVersion;

    /// <summary>SHA-256 of (format version, source content hash, spec): equal keys mean the shards are up to
    /// date.</summary>
    [JsonPropertyName("cache_key")]
    public string CacheKey { get; init; } = "";

    /// <summary>The source.</summary>
    [JsonPropertyName("source")]
    public SourceEntry Source { get; init; } = new();

    /// <summary>The pipeline spec as resolved (defaults filled in).</summary>
    [JsonPropertyName("spec")]
    public JsonElement Spec { get; init; }

    /// <summary>The sample.</summary>
    [JsonPropertyName("feature")]
    public FeatureEntry Feature { get; init; } = new();

    /// <summary>Class names by label.</summary>
    [JsonPropertyName("classes")]
    public IReadOnlyList<string> Classes { get; init; } = [];

    /// <summary>What turns a raw input into a sample, statistics included; checkpoints carry it.</summary>
    [JsonPropertyName("preprocessing")]
    public JsonElement Preprocessing { get; init; }

    /// <summary>The splits by name ("train", "test").</summary>
    [JsonPropertyName("splits")]
    public IReadOnlyDictionary<string, SplitEntry> Splits { get; init; } = new Dictionary<string, SplitEntry>();

    /// <summary>Inputs skipped under <c>--on-error skip</c>.</summary>
    [JsonPropertyName("skipped")]
    public IReadOnlyList<SkippedEntry> Skipped { get; init; } = [];

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The manifest as indented JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Indented);

    /// <summary>Reads the manifest of the dataset in <paramref name="dir"/>, with a typed error when it is missing,
    /// unreadable or of a newer format.</summary>
    public static DatasetManifest Read(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        string path = System.IO.Path.Combine(dir, FileName);
        if (!Directory.Exists(dir))
            throw new DatasetException(dir, DatasetProblem.MissingManifest, "no such dataset directory");
        if (!System.IO.File.Exists(path))
            throw new DatasetException(
                path,
                DatasetProblem.MissingManifest,
                "not found: the directory is not a prepared dataset, or its preparation did not finish "
                    + "(prepare it first: hpcengine data prepare)"
            );
        DatasetManifest? m;
        try
        {
            m = JsonSerializer.Deserialize<DatasetManifest>(System.IO.File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new DatasetException(path, DatasetProblem.BadManifest, $"not valid JSON: {e.Message}", e);
        }
        if (m == null || m.Format != "hpcengine-dataset")
            throw new DatasetException(path, DatasetProblem.BadManifest, "not an hpcengine dataset manifest");
        if (m.FormatVersion > CurrentVersion)
            throw new DatasetException(
                path,
                DatasetProblem.FutureVersion,
                $"format version {m.FormatVersion} is newer than this build reads ({CurrentVersion}): "
                    + "upgrade hpcengine, or prepare the dataset again with this build"
            );
        if (m.FormatVersion < 1 || m.Feature.Shape.Count == 0 || m.Classes.Count < 2)
            throw new DatasetException(
                path,
                DatasetProblem.BadManifest,
                "format version, feature shape or classes missing"
            );
        return m;
    }
}
