namespace HpcEngine.Benchmarks;

/// <summary>One run's figures, as results.json's "runs" entries record them.</summary>
public sealed record StrategyRunResult
{
    public required string Strategy { get; init; }
    public required string Codec { get; init; }
    public required int Workers { get; init; }
    public string Status { get; init; } = "ok";
    public string? Error { get; init; }
    public double FinalTestAccuracy { get; init; }
    public double? TimeToTargetSeconds { get; init; }
    public double TrainSeconds { get; init; }
    public double SamplesPerSecond { get; init; }
    public double BytesPerWorkerPerStep { get; init; }
    public double ComputeSeconds { get; init; }
    public double CommunicationSeconds { get; init; }
    public double WaitSeconds { get; init; }
    public double CompressSeconds { get; init; }
    public double StalenessMean { get; init; }
    public double StalenessMax { get; init; }
    public double ResidualNorm { get; init; }
    public double EstimatedCost { get; init; }
    public double? CostToTarget { get; init; }
    public double ProcessWallSeconds { get; init; }
    public string? Trace { get; init; }
    public IReadOnlyList<double[]> Curve { get; init; } = [];

    public string Label => $"{Strategy} + {Codec}" + (Workers > 0 ? $" ({Workers}w)" : "");

    public static StrategyRunResult Failed(StrategyRunPlan p, string error) =>
        new() { Strategy = p.Strategy, Codec = p.Codec, Workers = p.Workers, Status = "failed", Error = error };

    /// <summary>A run's figures from rank 0's summary (<see cref="Training.TrainSummary"/>: what <c>train --json</c>
    /// writes). Time to target is the first evaluation at or above the target, on the training clock (evaluation
    /// excluded); cost is machines (workers + dedicated servers) × price × time.</summary>
    public static StrategyRunResult From(StrategyRunPlan p, Training.TrainSummary s, double target, double pricePerHour, double processWall, string trace)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(s);
        if (s.Status == "failed") return Failed(p, s.Error ?? "the run failed");
        var curve = s.Curve.Where(pt => pt.Length == 2 && pt.All(double.IsFinite)).ToArray();
        double? ttt = curve.FirstOrDefault(pt => pt[1] >= target)?[0];
        // Every process is a machine to pay for: dedicated parameter servers included.
        double perSecond = pricePerHour * (p.Workers + StrategyStudy.DedicatedServers(p.Strategy)) / 3600;
        return new StrategyRunResult
        {
            Strategy = p.Strategy, Codec = p.Codec, Workers = p.Workers, Status = s.Diverged ? "diverged" : "ok",
            Error = s.Diverged ? "the training loss became NaN or infinite" : null,
            FinalTestAccuracy = s.FinalTestAccuracy, TimeToTargetSeconds = ttt, TrainSeconds = s.TrainSeconds,
            SamplesPerSecond = s.SamplesPerSecond, BytesPerWorkerPerStep = s.BytesPerWorkerPerStep,
            ComputeSeconds = s.ComputeSeconds, CommunicationSeconds = s.CommunicationSeconds, WaitSeconds = s.WaitSeconds, CompressSeconds = s.CompressSeconds,
            StalenessMean = s.StalenessMean, StalenessMax = s.StalenessMax, ResidualNorm = s.ResidualNorm,
            EstimatedCost = perSecond * s.TrainSeconds, CostToTarget = ttt * perSecond, ProcessWallSeconds = processWall, Trace = trace, Curve = curve,
        };
    }

    public Dictionary<string, object?> ToJson() => new()
    {
        ["strategy"] = Strategy, ["codec"] = Codec, ["workers"] = Workers, ["status"] = Status, ["error"] = Error,
        ["final_test_accuracy"] = FinalTestAccuracy, ["time_to_target_s"] = TimeToTargetSeconds, ["train_time_s"] = TrainSeconds,
        ["samples_per_s"] = SamplesPerSecond, ["bytes_per_worker_per_step"] = BytesPerWorkerPerStep,
        ["compute_s"] = ComputeSeconds, ["communication_s"] = CommunicationSeconds, ["wait_s"] = WaitSeconds, ["compress_s"] = CompressSeconds,
        ["staleness_mean"] = StalenessMean, ["staleness_max"] = StalenessMax, ["residual_norm"] = ResidualNorm,
        ["estimated_cost"] = EstimatedCost, ["cost_to_target"] = CostToTarget, ["process_wall_s"] = ProcessWallSeconds, ["trace"] = Trace,
        ["curve"] = Curve,
    };
}
