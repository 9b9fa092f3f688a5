using HpcEngine.Distributed;
using HpcEngine.Parallel;

namespace HpcEngine.Training;

/// <summary>Where a distributed run's time and bytes went, over all ranks: times are means per worker, bytes are what
/// the transport put on the wire (frame headers included), divided by workers and steps.</summary>
public sealed record RunMetrics(
    string Strategy,
    string Codec,
    int Workers,
    double ComputeSeconds,
    double CommunicationSeconds,
    double WaitSeconds,
    double CompressSeconds,
    double BytesPerWorkerPerStep,
    long WireBytes,
    double StalenessMean,
    long StalenessMax,
    double ResidualNorm
)
{
    /// <summary>Metrics of a single-process run (no communication).</summary>
    public static RunMetrics Single(double computeSeconds) =>
        new("single", "none", 1, computeSeconds, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>Gathers every rank's figures (a collective: every rank calls it at the same point) and combines
    /// them.</summary>
    internal static RunMetrics Gather(
        IProcessGroup group,
        ITrainingStrategy strategy,
        string codec,
        double computeSeconds,
        long bytesSent,
        long steps,
        StrategySeconds past = default
    )
    {
        var st = strategy.Staleness;
        double[] mine =
        [
            computeSeconds,
            past.Communication + strategy.CommunicationSeconds,
            past.Wait + strategy.WaitSeconds,
            past.Compress + strategy.CompressSeconds,
            bytesSent,
            steps,
            st.Updates,
            st.Mean,
            st.Max,
            strategy.ResidualNorm,
        ];
        int k = mine.Length,
            n = group.Size;
        using var local = Tensor.FromArray(mine);
        using var all = Tensor.Zeros([n * k], DType.Float64);
        group.AllGather(all, local).Wait();
        var v = all.ToArray<double>();
        // Times are averaged over the ranks that trained (a dedicated parameter server takes no steps).
        var trained = Enumerable.Range(0, n).Where(r => v[r * k + 5] > 0).DefaultIfEmpty(0).ToArray();
        double Mean(int i) => trained.Average(r => v[r * k + i]);
        double Sum(int i) => Enumerable.Range(0, n).Sum(r => v[r * k + i]);
        var staleness = StalenessStats.Merge(
            Enumerable.Range(0, n).Select(r => new StalenessStats((long)v[r * k + 6], v[r * k + 7], (long)v[r * k + 8]))
        );
        double workerSteps = Sum(5);
        return new RunMetrics(
            strategy.Name,
            codec,
            trained.Length,
            Mean(0),
            Mean(1),
            Mean(2),
            Mean(3),
            workerSteps == 0 ? 0 : Sum(4) / workerSteps,
            (long)Sum(4),
            staleness.Mean,
            staleness.Max,
            Mean(9)
        );
    }
}

/// <summary>Seconds an elastic run's strategies of earlier generations spent communicating, waiting and compressing
/// (each generation's strategy counts from zero).</summary>
internal readonly record struct StrategySeconds(double Communication, double Wait, double Compress)
{
    public StrategySeconds Plus(ITrainingStrategy s) =>
        new(Communication + s.CommunicationSeconds, Wait + s.WaitSeconds, Compress + s.CompressSeconds);
}
