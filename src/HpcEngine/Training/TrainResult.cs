using System.Text.Json;

namespace HpcEngine.Training;

/// <summary>Per-epoch figures of a run.</summary>
public sealed record EpochResult(int Epoch, double TrainLoss, double TestAccuracy, double Seconds, double SamplesPerSecond);

/// <summary>What a run produced.</summary>
/// <remarks><c>Curve</c>: (training wall seconds, test accuracy) at every evaluation, evaluation time left out.
/// <c>Metrics</c>: where the time and bytes went, combined over ranks.</remarks>
public sealed record TrainResult(TrainConfig Config, string DataSource, IReadOnlyList<EpochResult> Epochs, IReadOnlyList<double> StepLosses,
    double FinalTestAccuracy, double BestTestAccuracy, double TrainSeconds, double SamplesPerSecond, long Steps, string? CheckpointPath,
    IReadOnlyList<(double WallSeconds, double Accuracy)> Curve, RunMetrics Metrics)
{
    /// <summary>The summary as the JSON `hpcengine train --json` writes.</summary>
    public string ToJson() => JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["status"] = Diverged ? "diverged" : "completed",
        ["model"] = Config.Model,
        ["epochs"] = Config.Epochs,
        ["batch_size"] = Config.BatchSize,
        ["optimizer"] = RunFingerprint.Name(Config.Optimizer),
        ["lr"] = Config.Lr,
        ["seed"] = Config.Seed,
        ["final_test_accuracy"] = FinalTestAccuracy,
        ["best_test_accuracy"] = BestTestAccuracy,
        ["train_time_s"] = TrainSeconds,
        ["samples_per_s"] = SamplesPerSecond,
        ["steps"] = Steps,
        ["data_source"] = DataSource,
        ["checkpoint"] = CheckpointPath,
        ["strategy"] = Metrics.Strategy,
        ["codec"] = Metrics.Codec,
        ["workers"] = Metrics.Workers,
        ["compute_s"] = Metrics.ComputeSeconds,
        ["communication_s"] = Metrics.CommunicationSeconds,
        ["wait_s"] = Metrics.WaitSeconds,
        ["compress_s"] = Metrics.CompressSeconds,
        ["bytes_per_worker_per_step"] = Metrics.BytesPerWorkerPerStep,
        ["wire_bytes"] = Metrics.WireBytes,
        ["staleness_mean"] = Metrics.StalenessMean,
        ["staleness_max"] = Metrics.StalenessMax,
        ["residual_norm"] = Metrics.ResidualNorm,
        ["curve"] = Curve.Select(c => new[] { c.WallSeconds, c.Accuracy }).ToArray(),
        ["step_losses"] = StepLosses,
        ["diverged"] = Diverged,
        ["per_epoch"] = Epochs.Select(e => new Dictionary<string, object> { ["epoch"] = e.Epoch, ["train_loss"] = e.TrainLoss, ["test_accuracy"] = e.TestAccuracy, ["seconds"] = e.Seconds, ["samples_per_s"] = e.SamplesPerSecond }).ToArray(),
    }, JsonNumbers.Options);

    /// <summary>True when a training loss became NaN or infinite (the JSON then carries nulls where numbers were not finite).</summary>
    public bool Diverged => StepLosses.Any(l => !double.IsFinite(l));
}
