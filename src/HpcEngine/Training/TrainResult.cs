namespace HpcEngine.Training;

/// <summary>Per-epoch figures of a run.</summary>
public sealed record EpochResult(
    int Epoch,
    double TrainLoss,
    double TestAccuracy,
    double Seconds,
    double SamplesPerSecond
);

/// <summary>What a run produced.</summary>
/// <remarks><c>Curve</c>: (training wall seconds, test accuracy) at every evaluation, evaluation time left out.
/// <c>Metrics</c>: where the time and bytes went, combined over ranks.</remarks>
public sealed record TrainResult(
    TrainConfig Config,
    string DataSource,
    IReadOnlyList<EpochResult> Epochs,
    IReadOnlyList<double> StepLosses,
    double FinalTestAccuracy,
    double BestTestAccuracy,
    double TrainSeconds,
    double SamplesPerSecond,
    long Steps,
    string? CheckpointPath,
    IReadOnlyList<(double WallSeconds, double Accuracy)> Curve,
    RunMetrics Metrics
)
{
    /// <summary>An elastic run's member that left the job on request (preempted: SIGTERM) before the end.</summary>
    public bool Left { get; init; }

    /// <summary>An elastic run's membership record (null when the run was not elastic).</summary>
    public ElasticReport? Elastic { get; init; }

    /// <summary>The results in the one results schema (<see cref="TrainSummary"/>).</summary>
    public TrainSummary ToSummary() =>
        new()
        {
            Status =
                Diverged ? "diverged"
                : Left ? "left"
                : "completed",
            Model = Config.Model,
            Epochs = Config.Epochs,
            BatchSize = Config.BatchSize,
            Optimizer = RunFingerprint.Name(Config.Optimizer),
            Lr = Config.Lr,
            Seed = Config.Seed,
            FinalTestAccuracy = FinalTestAccuracy,
            BestTestAccuracy = BestTestAccuracy,
            TrainSeconds = TrainSeconds,
            SamplesPerSecond = SamplesPerSecond,
            Steps = Steps,
            DataSource = DataSource,
            Checkpoint = CheckpointPath,
            Strategy = Metrics.Strategy,
            Codec = Metrics.Codec,
            Workers = Metrics.Workers,
            ComputeSeconds = Metrics.ComputeSeconds,
            CommunicationSeconds = Metrics.CommunicationSeconds,
            WaitSeconds = Metrics.WaitSeconds,
            CompressSeconds = Metrics.CompressSeconds,
            BytesPerWorkerPerStep = Metrics.BytesPerWorkerPerStep,
            WireBytes = Metrics.WireBytes,
            StalenessMean = Metrics.StalenessMean,
            StalenessMax = Metrics.StalenessMax,
            ResidualNorm = Metrics.ResidualNorm,
            Curve = Curve.Select(c => new[] { c.WallSeconds, c.Accuracy }).ToArray(),
            StepLosses = StepLosses,
            Membership = Elastic?.Membership,
            ReplicaHashAgree = Elastic?.ReplicaHashAgree,
            SamplesSeen = Elastic?.SamplesSeen,
            SamplesExpected = Elastic?.SamplesExpected,
            Diverged = Diverged,
            PerEpoch = Epochs
                .Select(e => new EpochSummary(e.Epoch, e.TrainLoss, e.TestAccuracy, e.Seconds, e.SamplesPerSecond))
                .ToArray(),
        };

    /// <summary>The summary as the JSON `hpcengine train --json` writes (<see cref="TrainSummary"/>).</summary>
    public string ToJson() => ToSummary().ToJson();

    /// <summary>True when a training loss became NaN or infinite (the JSON then carries nulls where numbers were not
    /// finite).</summary>
    public bool Diverged => StepLosses.Any(l => !double.IsFinite(l));
}
