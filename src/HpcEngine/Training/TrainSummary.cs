using System.Text.Json;
using System.Text.Json.Serialization;

namespace HpcEngine.Training;

/// <summary>One epoch in a <see cref="TrainSummary"/>.</summary>
public sealed record EpochSummary(
    [property: JsonPropertyName("epoch")] int Epoch,
    [property: JsonPropertyName("train_loss")] double TrainLoss,
    [property: JsonPropertyName("test_accuracy")] double TestAccuracy,
    [property: JsonPropertyName("seconds")] double Seconds,
    [property: JsonPropertyName("samples_per_s")] double SamplesPerSecond);

/// <summary>A run's results as JSON: the one schema <c>train --json</c> writes, the strategy study reads (from a
/// worker process's file or an in-process run) and the report is computed from. Non-finite numbers (a diverged run)
/// are written as null and read back as NaN. A run that failed has <see cref="Status"/> "failed" and
/// <see cref="Error"/>.</summary>
public sealed record TrainSummary
{
    /// <summary>completed, diverged or failed.</summary>
    [JsonPropertyName("status")] public string Status { get; init; } = "completed";
    [JsonPropertyName("error")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Error { get; init; }
    [JsonPropertyName("error_type")][JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? ErrorType { get; init; }
    [JsonPropertyName("model")] public string Model { get; init; } = "";
    [JsonPropertyName("epochs")] public int Epochs { get; init; }
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; }
    [JsonPropertyName("optimizer")] public string Optimizer { get; init; } = "";
    [JsonPropertyName("lr")] public double Lr { get; init; }
    [JsonPropertyName("seed")] public ulong Seed { get; init; }
    [JsonPropertyName("final_test_accuracy")] public double FinalTestAccuracy { get; init; } = double.NaN;
    [JsonPropertyName("best_test_accuracy")] public double BestTestAccuracy { get; init; } = double.NaN;
    [JsonPropertyName("train_time_s")] public double TrainSeconds { get; init; } = double.NaN;
    [JsonPropertyName("samples_per_s")] public double SamplesPerSecond { get; init; } = double.NaN;
    [JsonPropertyName("steps")] public long Steps { get; init; }
    [JsonPropertyName("data_source")] public string DataSource { get; init; } = "";
    [JsonPropertyName("checkpoint")] public string? Checkpoint { get; init; }
    [JsonPropertyName("strategy")] public string Strategy { get; init; } = "single";
    [JsonPropertyName("codec")] public string Codec { get; init; } = "none";
    [JsonPropertyName("workers")] public int Workers { get; init; } = 1;
    [JsonPropertyName("compute_s")] public double ComputeSeconds { get; init; } = double.NaN;
    [JsonPropertyName("communication_s")] public double CommunicationSeconds { get; init; } = double.NaN;
    [JsonPropertyName("wait_s")] public double WaitSeconds { get; init; } = double.NaN;
    [JsonPropertyName("compress_s")] public double CompressSeconds { get; init; } = double.NaN;
    [JsonPropertyName("bytes_per_worker_per_step")] public double BytesPerWorkerPerStep { get; init; } = double.NaN;
    [JsonPropertyName("wire_bytes")] public long WireBytes { get; init; }
    [JsonPropertyName("staleness_mean")] public double StalenessMean { get; init; } = double.NaN;
    [JsonPropertyName("staleness_max")] public long StalenessMax { get; init; }
    [JsonPropertyName("residual_norm")] public double ResidualNorm { get; init; } = double.NaN;
    /// <summary>(training wall seconds, test accuracy) at every evaluation.</summary>
    [JsonPropertyName("curve")] public IReadOnlyList<double[]> Curve { get; init; } = [];
    [JsonPropertyName("step_losses")] public IReadOnlyList<double> StepLosses { get; init; } = [];
    [JsonPropertyName("diverged")] public bool Diverged { get; init; }
    [JsonPropertyName("per_epoch")] public IReadOnlyList<EpochSummary> PerEpoch { get; init; } = [];

    /// <summary>The summary of a run that ended with <paramref name="error"/> before it had results.</summary>
    public static TrainSummary Failed(TrainConfig config, Exception error, string errorText, int workers, string dataSource)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(error);
        return new TrainSummary
        {
            Status = error is TrainingDivergedException ? "diverged" : "failed", Error = errorText, ErrorType = error.GetType().Name,
            Model = config.Model, Epochs = config.Epochs, BatchSize = config.BatchSize, Optimizer = RunFingerprint.Name(config.Optimizer), Lr = config.Lr,
            Seed = config.Seed, Strategy = config.Strategy.ToString(), Codec = config.CodecName, Workers = workers, DataSource = dataSource,
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
        try { return Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path} is not a run summary (TrainSummary JSON): {e.Message}", e); }
    }
}

/// <summary>Source-generated serialization of <see cref="TrainSummary"/> (no reflection at run time).</summary>
[JsonSourceGenerationOptions(WriteIndented = true, Converters = [typeof(FiniteOrNullConverter)])]
[JsonSerializable(typeof(TrainSummary))]
internal sealed partial class TrainSummaryJson : JsonSerializerContext;
