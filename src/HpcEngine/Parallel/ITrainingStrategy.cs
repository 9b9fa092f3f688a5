using System.Globalization;
using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

/// <summary>How replicas of a model on several ranks stay in step. A training loop calls <see cref="Step"/> after
/// each backward instead of <c>optimizer.Step()</c>; the strategy decides what is communicated and when, so a run can
/// swap strategies over the same model, data and seed.</summary>
public interface ITrainingStrategy : IDisposable
{
    /// <summary>"sync", "zero1", "localsgd:8", "diloco:32" ...</summary>
    string Name { get; }

    /// <summary>Synchronises as the strategy prescribes and applies the update; clears the gradients.</summary>
    void Step();

    /// <summary>Bytes handed to collectives so far (payload, before the algorithm's 2(n−1)/n wire factor).</summary>
    long BytesCommunicated { get; }

    /// <summary>Seconds spent waiting for communication so far.</summary>
    double CommunicationSeconds { get; }

    /// <summary>The optimizer the strategy steps (learning-rate schedules set its rate).</summary>
    Optimizer Optimizer { get; }

    /// <summary>Seconds this worker was held back by others beyond the transfer itself (the staleness bound of a
    /// parameter server); synchronous strategies count all waiting as communication.</summary>
    double WaitSeconds => 0;

    /// <summary>Staleness of the updates applied so far (all zero for synchronous strategies).</summary>
    StalenessStats Staleness => default;

    /// <summary>L2 norm of what compression has computed but not yet sent (error-feedback residuals).</summary>
    double ResidualNorm => 0;

    /// <summary>Seconds spent compressing and decompressing so far.</summary>
    double CompressSeconds => 0;

    /// <summary>Ends training: brings every replica to the final parameters (a parameter server gathers its shards).
    /// Every rank calls it at the same point.</summary>
    void Finish() { }

    /// <summary>This rank's own state beyond the model and rank 0's optimizer (codec residuals and factors, outer
    /// optimizer state, a shard's optimizer), which a checkpoint saves per rank.</summary>
    (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars) StateDict() => (new(), new());

    /// <summary>Restores <see cref="StateDict"/> output.</summary>
    void LoadStateDict(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> scalars) { }

    /// <summary>False where a checkpoint cannot capture the state (a parameter server's in-flight clocks).</summary>
    bool CanCheckpoint => true;

    /// <summary>Whether the last <see cref="Step"/> ended where every rank that finished it holds the same replica (a
    /// synchronous step's exchange; an outer step of local SGD or DiLoCo). Elastic recovery goes back to the last such
    /// point: what a rank did after it (local steps) is redone.</summary>
    bool StepCommitted => true;

    /// <summary>Whether every step is such a point (false for local SGD and DiLoCo with a period above 1).</summary>
    bool CommitsEveryStep => true;

    /// <summary>Ends a window of local steps early with an exchange (every rank calls it at the same point); nothing
    /// for strategies that commit every step.</summary>
    void Commit() { }

    /// <summary>Whether the <see cref="StateDict"/> entry <paramref name="key"/> belongs to this rank alone (an
    /// error-feedback residual, DGC's local momentum): elastic recovery keeps each survivor's own and gives a joiner
    /// none, where every other entry comes from one root.</summary>
    bool IsPerRankState(string key) => false;

    /// <summary>Whether the optimizer's state is partitioned over the ranks (zero1): a change of membership then
    /// re-partitions it (<see cref="ExportShards"/>, <see cref="ImportShards"/>) instead of copying one rank's.</summary>
    bool PartitionsOptimizer => false;

    /// <summary>Before the strategy is rebuilt for a new group: this rank's part of the partitioned state and the
    /// copy it keeps of its neighbour's, at its last commit point, or one step further when
    /// <paramref name="advance"/> (the member furthest on finished the step this rank failed in). Null where nothing
    /// is partitioned.</summary>
    ShardedState? ExportShards(bool advance) => null;

    /// <summary>Over the new group (every member calls it; a joiner with null): assembles the whole partitioned state
    /// from the members' exports — a lost member's part from its neighbour's copy — and takes this rank's part of
    /// it.</summary>
    void ImportShards(IProcessGroup group, int root, ShardedState? mine) { }
}

/// <summary>Helpers for strategies' state dicts.</summary>
internal static class StrategyState
{
    /// <summary>The entries of <paramref name="state"/> under <paramref name="prefix"/>, with the prefix
    /// removed.</summary>
    public static Dictionary<string, Tensor> Under(IReadOnlyDictionary<string, Tensor> state, string prefix) =>
        state
            .Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);

    /// <summary>A codec entry only this rank holds: residuals (error feedback) and DGC's momentum accumulation. PowerSGD's
    /// Q and a warm-up's step count are the same on every rank.</summary>
    public static bool IsCodecPerRank(string key) =>
        key.StartsWith("codec.residual.", StringComparison.Ordinal)
        || key.StartsWith("codec.velocity.", StringComparison.Ordinal);

    public static void AddCodec(Dictionary<string, Tensor> into, Compression.GradientCodec? codec)
    {
        if (codec == null)
            return;
        foreach (var (k, v) in codec.StateDict())
            into["codec." + k] = v;
    }
}
