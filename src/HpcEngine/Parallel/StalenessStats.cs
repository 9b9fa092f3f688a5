namespace HpcEngine.Parallel;

/// <summary>Staleness of the gradients a parameter server applied: how many optimizer steps the parameters took between
/// the moment a worker read them and the step that applied its gradient (0 in synchronous training).</summary>
public readonly record struct StalenessStats(long Updates, double Mean, long Max)
{
    /// <summary>Combines the figures of several servers.</summary>
    public static StalenessStats Merge(IEnumerable<StalenessStats> parts)
    {
        long n = 0,
            max = 0;
        double sum = 0;
        foreach (var p in parts)
        {
            n += p.Updates;
            sum += p.Mean * p.Updates;
            max = Math.Max(max, p.Max);
        }
        return new StalenessStats(n, n == 0 ? 0 : sum / n, max);
    }
}
