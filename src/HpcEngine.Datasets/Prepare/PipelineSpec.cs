using System.Text.Json;
using System.Text.Json.Serialization;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>One step of a pipeline spec's <c>transforms</c>: <c>resize</c> (size [H, W]; <c>keep_aspect</c> scales
/// so the image covers that size, for a center-crop to cut), <c>center-crop</c> (size [H, W]), <c>to-float</c>,
/// <c>normalize</c> (per-channel mean and std over the training split) for images; <c>impute</c>, <c>standardize</c>,
/// <c>one-hot</c> for tables.</summary>
public sealed record TransformStep
{
    /// <summary>The operation's name.</summary>
    [JsonPropertyName("op")]
    public string Op { get; init; } = "";

    /// <summary>resize and center-crop: [H, W].</summary>
    [JsonPropertyName("size")]
    public IReadOnlyList<int>? Size { get; init; }

    /// <summary>resize: keep the aspect ratio (the shorter side fits; a center-crop must follow).</summary>
    [JsonPropertyName("keep_aspect")]
    public bool KeepAspect { get; init; }
}

/// <summary>How the samples are split into train and test: <c>given</c> (IDX train/t10k files, or train/ and test/
/// folders of an image tree) or a seeded random <c>test_fraction</c>.</summary>
public sealed record SplitSpec
{
    /// <summary>"given" or "fraction".</summary>
    [JsonPropertyName("mode")]
    public string Mode { get; init; } = "fraction";

    /// <summary>The share of samples in the test split (mode fraction), in (0, 1).</summary>
    [JsonPropertyName("test_fraction")]
    public double TestFraction { get; init; } = 0.2;

    /// <summary>The seed of the split.</summary>
    [JsonPropertyName("seed")]
    public ulong Seed { get; init; }
}

/// <summary>A declarative preparation pipeline (pipeline.json; schema in docs/DATASETS.md). Unset parts take the
/// source's defaults (<see cref="Resolve"/>); the resolved spec is recorded in the manifest and keys the
/// cache.</summary>
public sealed record PipelineSpec
{
    /// <summary>csv: the label column.</summary>
    [JsonPropertyName("label")]
    public string? Label { get; init; }

    /// <summary>The split.</summary>
    [JsonPropertyName("split")]
    public SplitSpec? Split { get; init; }

    /// <summary>images: 1 (grey) or 3 (RGB) channels.</summary>
    [JsonPropertyName("channels")]
    public int? Channels { get; init; }

    /// <summary>The transforms, in order.</summary>
    [JsonPropertyName("transforms")]
    public IReadOnlyList<TransformStep>? Transforms { get; init; }

    /// <summary>csv: column types by name — numeric, categorical or ignore — over the inferred ones.</summary>
    [JsonPropertyName("columns")]
    public IReadOnlyDictionary<string, string>? Columns { get; init; }

    /// <summary>Class names by label (idx; "fashion-mnist" for that dataset's names). Image folders and CSV labels
    /// name their classes themselves.</summary>
    [JsonPropertyName("class_names")]
    public JsonElement? ClassNames { get; init; }

    /// <summary>"fail" (default): the first unreadable input stops the preparation; "skip": it is skipped and
    /// counted.</summary>
    [JsonPropertyName("on_error")]
    public string? OnError { get; init; }

    /// <summary>The target size of a shard in bytes.</summary>
    [JsonPropertyName("shard_bytes")]
    public long? ShardBytes { get; init; }

    private static readonly JsonSerializerOptions Strict = new()
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>Reads a spec file; an unknown field or a malformed value is an error naming the file.</summary>
    public static PipelineSpec Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new DatasetException(path, DatasetProblem.BadSpec, "spec file not found");
        try
        {
            return JsonSerializer.Deserialize<PipelineSpec>(File.ReadAllText(path), Strict)
                ?? throw new DatasetException(path, DatasetProblem.BadSpec, "the spec is empty (null)");
        }
        catch (JsonException e)
        {
            throw new DatasetException(
                path,
                DatasetProblem.BadSpec,
                $"not a valid pipeline spec: {e.Message} (schema: docs/DATASETS.md)",
                e
            );
        }
    }

    /// <summary>The spec with the source's defaults filled in and checked: images get 3 channels and
    /// resize-keep-aspect + center-crop to 32 × 32 + to-float + normalize; IDX the given split, to-float +
    /// normalize; CSV a 0.2 test fraction and impute + standardize + one-hot.</summary>
    public PipelineSpec Resolve(SourceKind kind, string where)
    {
        var transforms = Transforms ?? DefaultTransforms(kind);
        var split = Split ?? new SplitSpec { Mode = kind == SourceKind.Idx ? "given" : "fraction" };
        string onError = OnError ?? "fail";
        var resolved = this with
        {
            Split = split,
            Transforms = transforms,
            OnError = onError,
            ShardBytes = ShardBytes ?? 64L << 20,
            Channels =
                kind == SourceKind.Images ? Channels ?? 3
                : kind == SourceKind.Idx ? 1
                : null,
        };
        resolved.Check(kind, where);
        return resolved;
    }

    private static TransformStep[] DefaultTransforms(SourceKind kind) =>
        kind switch
        {
            SourceKind.Images =>
            [
                new()
                {
                    Op = "resize",
                    Size = [32, 32],
                    KeepAspect = true,
                },
                new() { Op = "center-crop", Size = [32, 32] },
                new() { Op = "to-float" },
                new() { Op = "normalize" },
            ],
            SourceKind.Idx => [new() { Op = "to-float" }, new() { Op = "normalize" }],
            _ => [new() { Op = "impute" }, new() { Op = "standardize" }, new() { Op = "one-hot" }],
        };

    private static readonly string[] ImageOps = ["resize", "center-crop", "to-float", "normalize"];
    private static readonly string[] TableOps = ["impute", "standardize", "one-hot"];

    private void Check(SourceKind kind, string where)
    {
        void Fail(string what) =>
            throw new DatasetException(where, DatasetProblem.BadSpec, $"{what} (schema: docs/DATASETS.md)");
        if (OnError is not ("fail" or "skip"))
            Fail($"on_error is '{OnError}': use fail or skip");
        if (ShardBytes < 1024)
            Fail($"shard size {ShardBytes} bytes is below 1 KB");
        if (Split!.Mode is not ("given" or "fraction"))
            Fail($"split mode '{Split.Mode}': use given or fraction");
        if (Split.Mode == "fraction" && !(Split.TestFraction > 0 && Split.TestFraction < 1))
            Fail($"split test_fraction {Split.TestFraction} must be in (0, 1)");
        if (kind == SourceKind.Csv && Split.Mode == "given")
            Fail("a CSV file has no given split: use test_fraction");
        if (kind == SourceKind.Idx && Split.Mode != "given")
            Fail("IDX data comes split (train and t10k files): use the given split");
        if (Channels is not (null or 1 or 3))
            Fail($"channels {Channels}: use 1 (grey) or 3 (RGB)");
        if (kind != SourceKind.Csv && (Label != null || Columns != null))
            Fail("label and columns apply to CSV sources");
        var allowed =
            kind == SourceKind.Csv ? TableOps
            : kind == SourceKind.Idx ? ["to-float", "normalize"]
            : ImageOps;
        bool sized = kind != SourceKind.Images;
        bool pendingCrop = false;
        foreach (var t in Transforms!)
        {
            if (!allowed.Contains(t.Op))
                Fail(
                    $"transform '{t.Op}' does not apply to a {kind.ToString().ToLowerInvariant()} source: use "
                        + string.Join(", ", allowed)
                );
            if (t.Op is "resize" or "center-crop")
            {
                if (t.Size is not { Count: 2 } s || s[0] < 1 || s[1] < 1 || s[0] > 4096 || s[1] > 4096)
                    Fail($"transform '{t.Op}' needs size [H, W] of 1..4096");
                sized = true;
                pendingCrop = t.Op == "resize" && t.KeepAspect;
            }
        }
        if (!sized)
            Fail("images need a resize or center-crop to a fixed size");
        if (pendingCrop)
            Fail("a resize with keep_aspect must be followed by a center-crop (the samples need one fixed size)");
        if (Columns != null)
            foreach (var (name, type) in Columns)
                if (type is not ("numeric" or "categorical" or "ignore"))
                    Fail($"column '{name}' type '{type}': use numeric, categorical or ignore");
    }

    /// <summary>The output size [H, W] the transforms give.</summary>
    internal (int H, int W) OutputSize() =>
        Transforms!.Last(t => t.Op is "resize" or "center-crop").Size switch
        {
            { } s => (s[0], s[1]),
            _ => throw new InvalidOperationException("internal: no size"),
        };

    /// <summary>True when the transforms include <paramref name="op"/>.</summary>
    internal bool Has(string op) => Transforms!.Any(t => t.Op == op);
}
