using System.Globalization;
using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

/// <summary>ZeRO stage 1 (Rajbhandari et al. 2020): gradients are reduce-scattered so each rank holds the average
/// gradient of its 1/n shard of the (flattened) parameters; each rank updates only its shard with an optimizer whose
/// state covers only that shard (optimizer memory / n); the updated shards are allgathered back into every replica.
/// With an elementwise optimizer (SGD, Adam) the result equals synchronous training. With buddy copies (elastic runs)
/// each rank also sends its updated shard state to the next rank every step, so that a lost rank's shard survives on
/// its neighbour and the state can be re-partitioned over the survivors (<see cref="ShardRepartition"/>).</summary>
public sealed partial class Zero1Strategy : ITrainingStrategy
{
    private readonly Module _model;
    private readonly IProcessGroup _group;
    private readonly Tensor[] _params;
    private readonly int _padded,
        _shard;
    private readonly Tensor _flatGrad,
        _flatParams,
        _shardParam;
    private readonly Optimizer _optimizer;
    private readonly bool _buddyCopies;

    /// <inheritdoc/>
    public string Name => "zero1";

    /// <inheritdoc/>
    public Optimizer Optimizer => _optimizer;

    /// <inheritdoc/>
    public long BytesCommunicated { get; private set; }

    /// <inheritdoc/>
    public double CommunicationSeconds { get; private set; }

    /// <summary>ZeRO-1 over <paramref name="group"/>: gradients are reduce-scattered, each rank steps the optimizer
    /// <paramref name="makeOptimizer"/> builds over its shard of the flattened parameters, and the updated shards are
    /// allgathered; with <paramref name="buddyCopies"/>, each rank's shard state is also copied to the next rank every
    /// step (elastic recovery).</summary>
    public Zero1Strategy(
        Module model,
        IProcessGroup group,
        Func<IEnumerable<Tensor>, Optimizer> makeOptimizer,
        bool buddyCopies = false
    )
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(makeOptimizer);
        _model = model;
        _group = group;
        _buddyCopies = buddyCopies;
        TrainingStrategies.BroadcastFromRankZero(model, group);
        _params = model.Parameters().ToArray();
        long total = _params.Sum(p => (long)p.NumEl);
        _shard = (int)((total + group.Size - 1) / group.Size);
        _padded = _shard * group.Size;
        _flatGrad = Tensor.Zeros([_padded]).DetachFromScope();
        _flatParams = Tensor.Zeros([_padded]).DetachFromScope();
        Flatten(useGrads: false, _flatParams);
        using (var mine = _flatParams.Narrow(0, group.Rank * _shard, _shard))
            _shardParam = mine.Clone().DetachFromScope().RequiresGrad_();
        _optimizer = makeOptimizer([_shardParam]);
    }

    private void Flatten(bool useGrads, Tensor into)
    {
        int at = 0;
        foreach (var p in _params)
        {
            using var dst = into.Narrow(0, at, p.NumEl);
            var src = useGrads ? p.Grad : p;
            if (src != null)
            {
                using var flat = src.Reshape(-1);
                Ops.CopyInto(dst, flat);
            }
            else
                dst.FillRaw0();
            at += p.NumEl;
        }
    }

    /// <summary>This rank's shard of the optimizer state (rank 0's trainer file holds only shard 0).</summary>
    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars) StateDict() =>
        _optimizer.StateDict();

    /// <summary>Restores this rank's shard of the optimizer state, and re-reads the shard's master weights from the
    /// model (which the checkpoint has just loaded).</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> scalars)
    {
        _optimizer.LoadStateDict(tensors, scalars);
        using var noGrad = GradMode.NoGrad();
        Flatten(useGrads: false, _flatParams);
        using var mine = _flatParams.Narrow(0, _group.Rank * _shard, _shard);
        Ops.CopyInto(_shardParam, mine);
    }

    /// <inheritdoc/>
    public void Step()
    {
        using var noGrad = GradMode.NoGrad();
        Flatten(useGrads: true, _flatGrad);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        _shardParam.Grad ??= Tensor.Zeros([_shard]).DetachFromScope();
        _group.ReduceScatter(_shardParam.Grad, _flatGrad, new ReduceScatterOptions { Op = ReduceOp.Avg }).Wait();
        CommunicationSeconds += sw.Elapsed.TotalSeconds;
        if (_buddyCopies)
            SnapshotBeforeStep();
        _optimizer.Step();
        _applied = true;
        sw.Restart();
        if (_buddyCopies)
            ExchangeWithNeighbours(); // before the allgather: a rank that finishes the allgather knows every copy was made
        _group.AllGather(_flatParams, _shardParam).Wait();
        CommunicationSeconds += sw.Elapsed.TotalSeconds;
        BytesCommunicated += 2L * _padded * 4;
        Committed();
        int at = 0;
        foreach (var p in _params)
        {
            using var src = _flatParams.Narrow(0, at, p.NumEl);
            using var shaped = src.Reshape(p.ShapeArray);
            Ops.CopyInto(p, shaped);
            at += p.NumEl;
            p.ZeroGrad();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        DisposeCopies();
        _optimizer.Dispose();
        _flatGrad.Dispose();
        _flatParams.Dispose();
        _shardParam.ZeroGrad();
        _shardParam.Dispose();
    }
}
