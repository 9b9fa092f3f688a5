namespace HpcEngine.Benchmarks;

/// <summary>One planned run of a strategy study.</summary>
public sealed record StrategyRunPlan(string Strategy, string Codec, int Workers, string? Faults = null)
{
    /// <summary>A name for the run's directory: <c>sync_topk-0.01_w4</c>, <c>sync_none_w4_faults</c>.</summary>
    public string Id => $"{Strategy}_{Codec}_w{Workers}{(Faults != null ? "_faults" : "")}".Replace(':', '-');
}

/// <summary>The settings of a strategy study (the matrix of strategy × codec × worker count that <see
/// cref="StrategyStudy"/> runs), as results.json's "config" records them. Strategies and codecs are the texts users
/// write (<see cref="Parallel.StrategySpec"/>, <see cref="Compression.CodecSpec"/>); <see
/// cref="StrategyStudy.Validate"/> checks them all before the first run. With a <paramref name="FaultPlan"/> every
/// combination runs elastic twice, without and with the faults (<see cref="Training.FaultPlan"/>'s grammar), and
/// <paramref name="MaxRestarts"/> replacements per worker.</summary>
public sealed record StrategyStudyConfig(
    string Model,
    int[] Workers,
    int Epochs,
    int BatchSize,
    string[] Strategies,
    string[] Codecs,
    double TargetAccuracy,
    string? Bandwidth,
    string? Latency,
    string? Straggler,
    double PricePerHour,
    string? Data,
    ulong Seed,
    int EvalEvery,
    DateTime Started,
    int Cores,
    string Os,
    string Currency = "USD",
    string? FaultPlan = null,
    int MaxRestarts = 0
);
