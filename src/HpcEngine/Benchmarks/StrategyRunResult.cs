namespace HpcEngine.Benchmarks;

/// <summary>One run's figures, as results.json's "runs" entries record them.</summary>
public sealed record StrategyRunResult
{
    /// <summary>The data-parallel strategy ("single" in one process).</summary>
    public required string Strategy { get; init; }

    /// <summary>The gradient codec ("none" uncompressed).</summary>
    public required string Codec { get; init; }

    /// <summary>Ranks that trained.</summary>
    public required int Workers { get; init; }

    /// <summary>ok, diverged or failed.</summary>
    public string Status { get; init; } = "ok";

    /// <summary>Why the run failed or was flagged (null when it completed).</summary>
    public string? Error { get; init; }

    /// <summary>Test accuracy at the end (NaN when not measured).</summary>
    public double FinalTestAccuracy { get; init; }

    /// <summary>Training seconds to the first evaluation at or above the target (null: not reached).</summary>
    public double? TimeToTargetSeconds { get; init; }

    /// <summary>Training wall seconds, evaluation left out.</summary>
    public double TrainSeconds { get; init; }

    /// <summary>Training samples per second over all workers.</summary>
    public double SamplesPerSecond { get; init; }

    /// <summary>Bytes the transport put on the wire per worker and step (frame headers included).</summary>
    public double BytesPerWorkerPerStep { get; init; }

    /// <summary>Forward and backward seconds per worker (mean).</summary>
    public double ComputeSeconds { get; init; }

    /// <summary>Seconds per worker spent in collectives (mean).</summary>
    public double CommunicationSeconds { get; init; }

    /// <summary>Seconds per worker held back by other ranks (mean).</summary>
    public double WaitSeconds { get; init; }

    /// <summary>Seconds per worker spent compressing and decompressing (mean).</summary>
    public double CompressSeconds { get; init; }

    /// <summary>Mean staleness of applied gradients, in optimizer steps.</summary>
    public double StalenessMean { get; init; }

    /// <summary>Largest staleness of an applied gradient.</summary>
    public double StalenessMax { get; init; }

    /// <summary>Error-feedback residual norm still unsent (mean per worker).</summary>
    public double ResidualNorm { get; init; }

    /// <summary>Machines × price × training time.</summary>
    public double EstimatedCost { get; init; }

    /// <summary>Machines × price × time to target (null: not reached).</summary>
    public double? CostToTarget { get; init; }

    /// <summary>Wall seconds of the whole run, start-up and evaluation included.</summary>
    public double ProcessWallSeconds { get; init; }

    /// <summary>The run's merged Chrome trace, relative to the study's directory.</summary>
    public string? Trace { get; init; }

    /// <summary>The fault plan the run was under (null: fault-free).</summary>
    public string? Faults { get; init; }

    /// <summary>Committed samples per second over all workers (what the run kept of its work: samples of steps every
    /// member finished, over the training time); the plain throughput for runs that are not elastic.</summary>
    public double Goodput { get; init; } = double.NaN;

    /// <summary>Elastic runs: samples of the epochs never committed (0 when every sample was seen); null
    /// otherwise.</summary>
    public long? SamplesLost { get; init; }

    /// <summary>Elastic runs: whether every replica ended with the same parameters; null otherwise.</summary>
    public bool? ReplicasAgree { get; init; }

    /// <summary>Elastic runs: each change of membership (lost, joined, left) with its recovery time.</summary>
    public IReadOnlyList<Training.MembershipSummary> Membership { get; init; } = [];

    /// <summary>(training seconds, test accuracy) at every evaluation.</summary>
    public IReadOnlyList<double[]> Curve { get; init; } = [];

    /// <summary>"strategy + codec (Ww)", for tables and plots.</summary>
    public string Label =>
        $"{Strategy} + {Codec}" + (Workers > 0 ? $" ({Workers}w)" : "") + (Faults != null ? " under faults" : "");

    /// <summary>A run that failed with <paramref name="error"/>: no figures.</summary>
    public static StrategyRunResult Failed(StrategyRunPlan p, string error) =>
        new()
        {
            Strategy = p.Strategy,
            Codec = p.Codec,
            Workers = p.Workers,
            Status = "failed",
            Error = error,
            Faults = p.Faults,
        };

    /// <summary>A run's figures from rank 0's summary (<see cref="Training.TrainSummary"/>: what <c>train --json</c>
    /// writes). Time to target is the first evaluation at or above the target, on the training clock (evaluation
    /// excluded); cost is machines (workers + dedicated servers) × price × time.</summary>
    public static StrategyRunResult From(
        StrategyRunPlan p,
        Training.TrainSummary s,
        double target,
        double pricePerHour,
        double processWall,
        string trace
    )
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(s);
        if (s.Status == "failed")
            return Failed(p, s.Error ?? "the run failed");
        var curve = s.Curve.Where(pt => pt.Length == 2 && pt.All(double.IsFinite)).ToArray();
        double? ttt = curve.FirstOrDefault(pt => pt[1] >= target)?[0];
        // Every process is a machine to pay for: dedicated parameter servers included.
        double perSecond = pricePerHour * (p.Workers + StrategyStudy.DedicatedServers(p.Strategy)) / 3600;
        return new StrategyRunResult
        {
            Strategy = p.Strategy,
            Codec = p.Codec,
            Workers = p.Workers,
            Status = s.Diverged ? "diverged" : "ok",
            Error = s.Diverged ? "the training loss became NaN or infinite" : null,
            FinalTestAccuracy = s.FinalTestAccuracy,
            TimeToTargetSeconds = ttt,
            TrainSeconds = s.TrainSeconds,
            SamplesPerSecond = s.SamplesPerSecond,
            BytesPerWorkerPerStep = s.BytesPerWorkerPerStep,
            ComputeSeconds = s.ComputeSeconds,
            CommunicationSeconds = s.CommunicationSeconds,
            WaitSeconds = s.WaitSeconds,
            CompressSeconds = s.CompressSeconds,
            StalenessMean = s.StalenessMean,
            StalenessMax = s.StalenessMax,
            ResidualNorm = s.ResidualNorm,
            EstimatedCost = perSecond * s.TrainSeconds,
            CostToTarget = ttt * perSecond,
            ProcessWallSeconds = processWall,
            Trace = trace,
            Curve = curve,
            Faults = p.Faults,
            Goodput = s.SamplesSeen is long seen ? seen / s.TrainSeconds : s.SamplesPerSecond,
            SamplesLost =
                s.SamplesSeen is long n && s.SamplesExpected is long expected ? Math.Max(0, expected - n) : null,
            ReplicasAgree = s.ReplicaHashAgree,
            Membership = s.Membership ?? [],
        };
    }

    /// <summary>The run as results.json's "runs" entry writes it (docs/BENCHMARKS.md).</summary>
    public Dictionary<string, object?> ToJson() =>
        new()
        {
            ["strategy"] = Strategy,
            ["codec"] = Codec,
            ["workers"] = Workers,
            ["status"] = Status,
            ["error"] = Error,
            ["final_test_accuracy"] = FinalTestAccuracy,
            ["time_to_target_s"] = TimeToTargetSeconds,
            ["train_time_s"] = TrainSeconds,
            ["samples_per_s"] = SamplesPerSecond,
            ["bytes_per_worker_per_step"] = BytesPerWorkerPerStep,
            ["compute_s"] = ComputeSeconds,
            ["communication_s"] = CommunicationSeconds,
            ["wait_s"] = WaitSeconds,
            ["compress_s"] = CompressSeconds,
            ["staleness_mean"] = StalenessMean,
            ["staleness_max"] = StalenessMax,
            ["residual_norm"] = ResidualNorm,
            ["estimated_cost"] = EstimatedCost,
            ["cost_to_target"] = CostToTarget,
            ["process_wall_s"] = ProcessWallSeconds,
            ["trace"] = Trace,
            ["curve"] = Curve,
            ["faults"] = Faults,
            ["goodput_samples_per_s"] = Goodput,
            ["samples_lost"] = SamplesLost,
            ["replicas_agree"] = ReplicasAgree,
            ["membership"] = Membership,
        };
}
