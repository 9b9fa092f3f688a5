using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using HpcEngine.Data;

namespace HpcEngine.Training;

/// <summary>What a checkpoint must be resumed with: the settings that change what the next step computes. A resume
/// whose fingerprint differs is refused with the differences named, except for the changes
/// <see cref="ResumeChange"/> lets the user accept explicitly.</summary>
public sealed record RunFingerprint
{
    /// <summary>The model trained.</summary>
    public string Model { get; init; } = "";

    /// <summary>Ranks that trained.</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>The data-parallel strategy ("single" in one process).</summary>
    public string Strategy { get; init; } = "sync";

    /// <summary>The gradient codec ("none" uncompressed).</summary>
    public string Codec { get; init; } = "none";

    /// <summary>Samples per step and rank.</summary>
    public int BatchSize { get; init; }

    /// <summary>Micro-batches per optimizer step.</summary>
    public int GradAccumulation { get; init; } = 1;

    /// <summary>The optimizer's name (sgd, adam, adamw).</summary>
    public string Optimizer { get; init; } = "";

    /// <summary>Peak learning rate.</summary>
    public double Lr { get; init; }

    /// <summary>SGD's momentum.</summary>
    public double Momentum { get; init; }

    /// <summary>Weight decay.</summary>
    public double WeightDecay { get; init; }

    /// <summary>Warm-up steps of the schedule.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>Gradient-norm clip (0: off).</summary>
    public double ClipNorm { get; init; }

    /// <summary>Epochs the run was set for.</summary>
    public int Epochs { get; init; }

    /// <summary>Whether crops and flips were on.</summary>
    public bool Augment { get; init; }

    /// <summary>The run's seed.</summary>
    public ulong Seed { get; init; }

    /// <summary>Mixed precision (none, bf16).</summary>
    public string Amp { get; init; } = "none";

    /// <summary>The training data: sample count and a SHA-256 of its images and labels (first 16 hex digits).</summary>
    public string Data { get; init; } = "";

    /// <summary>An option's name as configs spell it ("sgd", "adamw", "bf16"): its JSON name.</summary>
    internal static string Name<T>(T value)
        where T : struct, Enum => System.Text.Json.JsonSerializer.Serialize(value).Trim('"');

    /// <summary>The fingerprint of a run of <paramref name="config"/> over <paramref name="workers"/> ranks on
    /// <paramref name="train"/>.</summary>
    public static RunFingerprint Of(TrainConfig config, int workers, Dataset train)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(train);
        return new RunFingerprint
        {
            Model = config.Model,
            WorldSize = workers,
            Strategy = config.Strategy.ToString(),
            Codec = config.CodecName,
            BatchSize = config.BatchSize,
            GradAccumulation = config.GradAccumulation,
            Optimizer = Name(config.Optimizer),
            Lr = config.Lr,
            Momentum = config.Momentum,
            WeightDecay = config.WeightDecay,
            WarmupSteps = config.WarmupSteps,
            ClipNorm = config.ClipNorm,
            Epochs = config.Epochs,
            Augment = config.Augment,
            Seed = config.Seed,
            Amp = Name(config.Amp),
            Data = DataIdentity(train),
        };
    }

    /// <summary>The dataset's <see cref="Dataset.Identity"/>: "N samples, sha256 " and 16 hex digits.</summary>
    public static string DataIdentity(Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return data.Identity();
    }

    /// <summary>The fingerprint as the trainer file's metadata stores it.</summary>
    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>Reads a fingerprint back from <see cref="ToJson"/>'s text.</summary>
    public static RunFingerprint FromJson(string json) =>
        JsonSerializer.Deserialize<RunFingerprint>(json) ?? throw new InvalidDataException("empty run fingerprint");

    /// <summary>Each field that differs, as (flag name, saved, now).</summary>
    public IReadOnlyList<(string Field, string Saved, string Now)> Differences(RunFingerprint now)
    {
        ArgumentNullException.ThrowIfNull(now);
        var diffs = new List<(string, string, string)>();
        void Check<T>(string field, T saved, T current)
        {
            if (!EqualityComparer<T>.Default.Equals(saved, current))
                diffs.Add(
                    (
                        field,
                        Convert.ToString(saved, CultureInfo.InvariantCulture) ?? "",
                        Convert.ToString(current, CultureInfo.InvariantCulture) ?? ""
                    )
                );
        }
        Check("model", Model, now.Model);
        Check("world-size", WorldSize, now.WorldSize);
        Check("strategy", Strategy, now.Strategy);
        Check("compress", Codec, now.Codec);
        Check("batch-size", BatchSize, now.BatchSize);
        Check("grad-accumulation", GradAccumulation, now.GradAccumulation);
        Check("optimizer", Optimizer, now.Optimizer);
        Check("lr", Lr, now.Lr);
        Check("momentum", Momentum, now.Momentum);
        Check("weight-decay", WeightDecay, now.WeightDecay);
        Check("warmup-steps", WarmupSteps, now.WarmupSteps);
        Check("clip-norm", ClipNorm, now.ClipNorm);
        Check("epochs", Epochs, now.Epochs);
        Check("augment", Augment, now.Augment);
        Check("seed", Seed, now.Seed);
        Check("amp", Amp, now.Amp);
        Check("data", Data, now.Data);
        return diffs;
    }
}

/// <summary>The changes a resume may accept when the user names them (<c>--allow-resume-change
/// epochs,world-size</c>).</summary>
public static class ResumeChange
{
    /// <summary>More (or fewer) epochs: the cosine schedule is stretched over the new total.</summary>
    public const string Epochs = "epochs";

    /// <summary>Another number of ranks (sync data parallelism without a codec: no per-rank state): the data position
    /// and the schedule's step are rescaled to the samples already seen.</summary>
    public const string WorldSize = "world-size";

    /// <summary>Every change a resume can accept.</summary>
    public static readonly string[] All = [Epochs, WorldSize];
}
