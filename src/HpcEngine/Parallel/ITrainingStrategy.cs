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

    public static void AddCodec(Dictionary<string, Tensor> into, Compression.GradientCodec? codec)
    {
        if (codec == null)
            return;
        foreach (var (k, v) in codec.StateDict())
            into["codec." + k] = v;
    }
}
