using System.Globalization;
using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

/// <summary>Synchronous data parallelism: DDP gradient averaging (overlapped with backward, optionally compressed),
/// then the optimizer.</summary>
public sealed class SyncStrategy(
    Module model,
    IProcessGroup group,
    Optimizer optimizer,
    Compression.GradientCodec? codec = null
) : ITrainingStrategy
{
    private readonly DistributedDataParallel _ddp = new(model, group, codec: codec);

    /// <inheritdoc/>
    public Optimizer Optimizer => optimizer;

    /// <inheritdoc/>
    public string Name => "sync";

    /// <inheritdoc/>
    public long BytesCommunicated => _ddp.BytesReduced;

    /// <inheritdoc/>
    public double CommunicationSeconds { get; private set; }

    /// <inheritdoc/>
    public double ResidualNorm => _ddp.Codec?.TotalResidualNorm() ?? 0;

    /// <inheritdoc/>
    public double CompressSeconds => _ddp.Codec?.CompressSeconds ?? 0;

    /// <summary>The wrapped DDP (for NoSync accumulation steps).</summary>
    public DistributedDataParallel Ddp => _ddp;

    /// <inheritdoc/>
    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars) StateDict()
    {
        var t = new Dictionary<string, Tensor>();
        StrategyState.AddCodec(t, _ddp.Codec);
        return (t, new());
    }

    /// <inheritdoc/>
    public void LoadStateDict(
        IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string> scalars
    ) => _ddp.Codec?.LoadStateDict(StrategyState.Under(tensors, "codec."));

    /// <inheritdoc/>
    public bool IsPerRankState(string key) => StrategyState.IsCodecPerRank(key);

    /// <inheritdoc/>
    public void Step()
    {
        CommunicationSeconds += _ddp.Synchronize();
        optimizer.Step();
        optimizer.ZeroGrad();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _ddp.Dispose();
        optimizer.Dispose();
    }
}
