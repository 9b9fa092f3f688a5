using System.Text.Json;

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

    /// <summary>Reads rank 0's run summary (<see cref="Training.TrainResult.ToJson"/>: what <c>train --json</c> writes). Time to target is the first evaluation at or above the target,
    /// on the training clock (evaluation excluded); cost is machines (workers + dedicated servers) × price × time.</summary>
    public static StrategyRunResult From(StrategyRunPlan p, JsonElement j, double target, double pricePerHour, double processWall, string trace)
    {
        double D(string name) => j.GetProperty(name) is { ValueKind: JsonValueKind.Number } v ? v.GetDouble() : double.NaN;
        bool diverged = j.TryGetProperty("diverged", out var dv) && dv.ValueKind == JsonValueKind.True;
        var curve = j.GetProperty("curve").EnumerateArray()
            .Select(pt => pt.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN).ToArray())
            .Where(pt => pt.All(double.IsFinite)).ToArray();
        double? ttt = curve.FirstOrDefault(pt => pt[1] >= target)?[0];
        // Every process is a machine to pay for: dedicated parameter servers included.
        double perSecond = pricePerHour * (p.Workers + StrategyStudy.DedicatedServers(p.Strategy)) / 3600;
        return new StrategyRunResult
        {
            Strategy = p.Strategy, Codec = p.Codec, Workers = p.Workers, Status = diverged ? "diverged" : "ok",
            Error = diverged ? "the training loss became NaN or infinite" : null,
            FinalTestAccuracy = D("final_test_accuracy"), TimeToTargetSeconds = ttt, TrainSeconds = D("train_time_s"),
            SamplesPerSecond = D("samples_per_s"), BytesPerWorkerPerStep = D("bytes_per_worker_per_step"),
            ComputeSeconds = D("compute_s"), CommunicationSeconds = D("communication_s"), WaitSeconds = D("wait_s"), CompressSeconds = D("compress_s"),
            StalenessMean = D("staleness_mean"), StalenessMax = D("staleness_max"), ResidualNorm = D("residual_norm"),
            EstimatedCost = perSecond * D("train_time_s"), CostToTarget = ttt * perSecond, ProcessWallSeconds = processWall, Trace = trace, Curve = curve,
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
