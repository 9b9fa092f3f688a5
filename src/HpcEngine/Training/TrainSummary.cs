using System.Text.Json;
using System.Text.Json.Serialization;

namespace HpcEngine.Training;

/// <summary>One epoch in a <see cref="TrainSummary"/>.</summary>
public sealed record EpochSummary(
    [property: JsonPropertyName("epoch")] int Epoch,
    [property: JsonPropertyName("train_loss")] double TrainLoss,
    [property: JsonPropertyName("test_accuracy")] double TestAccuracy,
    [property: JsonPropertyName("seconds")] double Seconds,
    [property: JsonPropertyName("samples_per_s")] double SamplesPerSecond
);

/// <summary>A run's results as JSON: the one schema <c>train --json</c> writes, the strategy study reads (from a
/// worker process's file or an in-process run) and the report is computed from. Non-finite numbers (a diverged run)
/// are written as null and read back as NaN. A run that failed has <see cref="Status"/> "failed" and
/// <see cref="Error"/>.</summary>
public sealed record TrainSummary
{
    /// <summary>completed, diverged or failed.</summary>
    [JsonPropertyName("status")]
    public string Status { get; init; } = "completed";

    /// <summary>Why the run failed or was flagged (null when it completed).</summary>
    [JsonPropertyName("error")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Error { get; init; }

    /// <summary>The failure's exception type (null when it completed).</summary>
    [JsonPropertyName("error_type")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ErrorType { get; init; }

    /// <summary>The model trained.</summary>
    [JsonPropertyName("model")]
    public string Model { get; init; } = "";

    /// <summary>Epochs the run was set for.</summary>
    [JsonPropertyName("epochs")]
    public int Epochs { get; init; }

    /// <summary>Samples per step and rank.</summary>
    [JsonPropertyName("batch_size")]
    public int BatchSize { get; init; }

    /// <summary>The optimizer's name (sgd, adam, adamw).</summary>
    [JsonPropertyName("optimizer")]
    public string Optimizer { get; init; } = "";

    /// <summary>Peak learning rate.</summary>
    [JsonPropertyName("lr")]
    public double Lr { get; init; }

    /// <summary>The run's seed.</summary>
    [JsonPropertyName("seed")]
    public ulong Seed { get; init; }

    /// <summary>Test accuracy at the end (NaN when not measured).</summary>
    [JsonPropertyName("final_test_accuracy")]
    public double FinalTestAccuracy { get; init; } = double.NaN;

    /// <summary>Best test accuracy of any evaluation.</summary>
    [JsonPropertyName("best_test_accuracy")]
    public double BestTestAccuracy { get; init; } = double.NaN;

    /// <summary>Training wall seconds, evaluation left out.</summary>
    [JsonPropertyName("train_time_s")]
    public double TrainSeconds { get; init; } = double.NaN;

    /// <summary>Training samples per second over all workers.</summary>
    [JsonPropertyName("samples_per_s")]
    public double SamplesPerSecond { get; init; } = double.NaN;

    /// <summary>Optimizer steps taken.</summary>
    [JsonPropertyName("steps")]
    public long Steps { get; init; }

    /// <summary>Where the data came from.</summary>
    [JsonPropertyName("data_source")]
    public string DataSource { get; init; } = "";

    /// <summary>The last checkpoint written (null: none).</summary>
    [JsonPropertyName("checkpoint")]
    public string? Checkpoint { get; init; }

    /// <summary>The data-parallel strategy ("single" in one process).</summary>
    [JsonPropertyName("strategy")]
    public string Strategy { get; init; } = "single";

    /// <summary>The gradient codec ("none" uncompressed).</summary>
    [JsonPropertyName("codec")]
    public string Codec { get; init; } = "none";

    /// <summary>Ranks that trained.</summary>
    [JsonPropertyName("workers")]
    public int Workers { get; init; } = 1;

    /// <summary>Forward and backward seconds per worker (mean).</summary>
    [JsonPropertyName("compute_s")]
    public double ComputeSeconds { get; init; } = double.NaN;

    /// <summary>Seconds per worker spent in collectives (mean).</summary>
    [JsonPropertyName("communication_s")]
    public double CommunicationSeconds { get; init; } = double.NaN;

    /// <summary>Seconds per worker held back by other ranks (mean).</summary>
    [JsonPropertyName("wait_s")]
    public double WaitSeconds { get; init; } = double.NaN;

    /// <summary>Seconds per worker spent compressing and decompressing (mean).</summary>
    [JsonPropertyName("compress_s")]
    public double CompressSeconds { get; init; } = double.NaN;

    /// <summary>Bytes the transport put on the wire per worker and step (frame headers included).</summary>
    [JsonPropertyName("bytes_per_worker_per_step")]
    public double BytesPerWorkerPerStep { get; init; } = double.NaN;

    /// <summary>Bytes on the wire in total.</summary>
    [JsonPropertyName("wire_bytes")]
    public long WireBytes { get; init; }

    /// <summary>Mean staleness of applied gradients, in optimizer steps.</summary>
    [JsonPropertyName("staleness_mean")]
    public double StalenessMean { get; init; } = double.NaN;

    /// <summary>Largest staleness of an applied gradient.</summary>
    [JsonPropertyName("staleness_max")]
    public long StalenessMax { get; init; }

    /// <summary>Error-feedback residual norm still unsent (mean per worker).</summary>
    [JsonPropertyName("residual_norm")]
    public double ResidualNorm { get; init; } = double.NaN;

    /// <summary>(training wall seconds, test accuracy) at every evaluation.</summary>
    [JsonPropertyName("curve")]
    public IReadOnlyList<double[]> Curve { get; init; } = [];

    /// <summary>Rank 0's loss of every optimizer step.</summary>
    [JsonPropertyName("step_losses")]
    public IReadOnlyList<double> StepLosses { get; init; } = [];

    /// <summary>Whether a loss became NaN or infinite.</summary>
    [JsonPropertyName("diverged")]
    public bool Diverged { get; init; }

    /// <summary>Each epoch's figures.</summary>
    [JsonPropertyName("per_epoch")]
    public IReadOnlyList<EpochSummary> PerEpoch { get; init; } = [];

    /// <summary>Elastic runs: every change of membership (null otherwise).</summary>
    [JsonPropertyName("membership")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<MembershipSummary>? Membership { get; init; }

    /// <summary>Elastic runs: whether every replica ended with the same parameters (a hash compared over the group).</summary>
    [JsonPropertyName("replica_hash_agree")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? ReplicaHashAgree { get; init; }

    /// <summary>Elastic runs: samples of committed steps over all ranks (the sampler's end-of-epoch padding included).</summary>
    [JsonPropertyName("samples_seen")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? SamplesSeen { get; init; }

    /// <summary>Elastic runs: the epochs' samples (epochs × dataset size).</summary>
    [JsonPropertyName("samples_expected")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? SamplesExpected { get; init; }

    /// <summary>The summary of a run that ended with <paramref name="error"/> before it had results.</summary>
    public static TrainSummary Failed(
        TrainConfig config,
        Exception error,
        string errorText,
        int workers,
        string dataSource
    )
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(error);
        return new TrainSummary
        {
            Status = error is TrainingDivergedException ? "diverged" : "failed",
            Error = errorText,
            ErrorType = error.GetType().Name,
            Model = config.Model,
            Epochs = config.Epochs,
            BatchSize = config.BatchSize,
            Optimizer = RunFingerprint.Name(config.Optimizer),
            Lr = config.Lr,
            Seed = config.Seed,
            Strategy = config.Strategy.ToString(),
            Codec = config.CodecName,
            Workers = workers,
            DataSource = dataSource,
            Diverged = error is TrainingDivergedException,
        };
    }

    /// <summary>Indented JSON, non-finite numbers as null.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, TrainSummaryJson.Default.TrainSummary);

    /// <summary>Parses a summary; an error names what does not follow the schema.</summary>
    public static TrainSummary Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        return JsonSerializer.Deserialize(json, TrainSummaryJson.Default.TrainSummary)
            ?? throw new InvalidDataException("a run summary is null: expected a TrainSummary object");
    }

    /// <summary>Reads a summary file (<c>train --json</c>).</summary>
    public static TrainSummary Read(string path)
    {
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a run summary (TrainSummary JSON): {e.Message}", e);
        }
    }
}

/// <summary>Source-generated serialization of <see cref="TrainSummary"/> (no reflection at run time).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, Converters = [typeof(FiniteOrNullConverter)])]
[JsonSerializable(typeof(TrainSummary))]
internal sealed partial class TrainSummaryJson : JsonSerializerContext;
