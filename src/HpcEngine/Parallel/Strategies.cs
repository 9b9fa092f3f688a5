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
}

/// <summary>Builds strategies from their names: sync, zero1, localsgd:H, diloco:H.</summary>
public static class TrainingStrategies
{
    /// <param name="spec">sync, zero1, localsgd:H or diloco:H.</param>
    /// <param name="model">This rank's replica.</param>
    /// <param name="group">The ranks that train together.</param>
    /// <param name="makeOptimizer">Builds the optimizer over the parameters it is given (zero1 passes its shard).</param>
    /// <param name="codec">Gradient compression for the sync strategy (others reject one).</param>
    public static ITrainingStrategy Create(string spec, Module model, IProcessGroup group, Func<IEnumerable<Tensor>, Optimizer> makeOptimizer, Compression.GradientCodec? codec = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(makeOptimizer);
        var parts = spec.Split(':', 2);
        int H() => parts.Length == 2 && int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int h) && h > 0
            ? h : throw new ArgumentException($"strategy '{spec}' needs a positive period, e.g. {parts[0]}:8");
        if (codec != null && parts[0] != "sync")
            throw new ArgumentException($"compression ({codec.Name}) composes with the sync strategy only in this version, not with '{spec}'");
        return parts[0] switch
        {
            "sync" => new SyncStrategy(model, group, makeOptimizer(model.Parameters()), codec),
            "zero1" => new Zero1Strategy(model, group, makeOptimizer),
            "localsgd" => new LocalSgdStrategy(model, group, makeOptimizer(model.Parameters()), H()),
            "diloco" => new DiLoCoStrategy(model, group, makeOptimizer(model.Parameters()), H()),
            _ => throw new ArgumentException($"unknown strategy '{spec}': use sync, zero1, localsgd:H or diloco:H"),
        };
    }

    /// <summary>Broadcasts rank 0's parameters and buffers so every replica starts equal.</summary>
    internal static void BroadcastFromRankZero(Module model, IProcessGroup group)
    {
        using var noGrad = GradMode.NoGrad();
        var works = model.StateDict().Select(kv => kv.Value).Where(t => t.DType.IsFloating()).Select(t => group.Broadcast(t)).ToArray();
        foreach (var w in works) w.Wait();
    }

    /// <summary>Averages every parameter across ranks in place; returns the payload bytes.</summary>
    internal static long AverageParameters(IEnumerable<Tensor> parameters, IProcessGroup group)
    {
        var ps = parameters.ToArray();
        var works = ps.Select(p => group.AllReduce(p, new AllReduceOptions { Op = ReduceOp.Avg })).ToArray();
        foreach (var w in works) w.Wait();
        foreach (var p in ps) p.BumpVersion();
        return ps.Sum(p => (long)p.NumEl * p.DType.SizeOf());
    }
}

/// <summary>Synchronous data parallelism: DDP gradient averaging (overlapped with backward, optionally compressed),
/// then the optimizer.</summary>
public sealed class SyncStrategy(Module model, IProcessGroup group, Optimizer optimizer, Compression.GradientCodec? codec = null) : ITrainingStrategy
{
    private readonly DistributedDataParallel _ddp = new(model, group, codec: codec);

    public Optimizer Optimizer => optimizer;

    public string Name => "sync";
    public long BytesCommunicated => _ddp.BytesReduced;
    public double CommunicationSeconds { get; private set; }

    /// <summary>The wrapped DDP (for NoSync accumulation steps).</summary>
    public DistributedDataParallel Ddp => _ddp;

    public void Step()
    {
        CommunicationSeconds += _ddp.Synchronize();
        optimizer.Step();
        optimizer.ZeroGrad();
    }

    public void Dispose()
    {
        _ddp.Dispose();
        optimizer.Dispose();
    }
}

/// <summary>ZeRO stage 1 (Rajbhandari et al. 2020): gradients are reduce-scattered so each rank holds the average
/// gradient of its 1/n shard of the (flattened) parameters; each rank updates only its shard with an optimizer whose
/// state covers only that shard (optimizer memory / n); the updated shards are allgathered back into every replica.
/// With an elementwise optimizer (SGD, Adam) the result equals synchronous training.</summary>
public sealed class Zero1Strategy : ITrainingStrategy
{
    private readonly Module _model;
    private readonly IProcessGroup _group;
    private readonly Tensor[] _params;
    private readonly int _padded, _shard;
    private readonly Tensor _flatGrad, _flatParams, _shardParam;
    private readonly Optimizer _optimizer;

    public string Name => "zero1";
    public Optimizer Optimizer => _optimizer;
    public long BytesCommunicated { get; private set; }
    public double CommunicationSeconds { get; private set; }

    public Zero1Strategy(Module model, IProcessGroup group, Func<IEnumerable<Tensor>, Optimizer> makeOptimizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(makeOptimizer);
        _model = model;
        _group = group;
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
            if (src != null) { using var flat = src.Reshape(-1); Ops.CopyInto(dst, flat); }
            else dst.FillRaw0();
            at += p.NumEl;
        }
    }

    public void Step()
    {
        using var noGrad = GradMode.NoGrad();
        Flatten(useGrads: true, _flatGrad);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        _shardParam.Grad ??= Tensor.Zeros([_shard]).DetachFromScope();
        _group.ReduceScatter(_shardParam.Grad, _flatGrad, new ReduceScatterOptions { Op = ReduceOp.Avg }).Wait();
        CommunicationSeconds += sw.Elapsed.TotalSeconds;
        _optimizer.Step();
        sw.Restart();
        _group.AllGather(_flatParams, _shardParam).Wait();
        CommunicationSeconds += sw.Elapsed.TotalSeconds;
        BytesCommunicated += 2L * _padded * 4;
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

    public void Dispose()
    {
        _optimizer.Dispose();
        _flatGrad.Dispose();
        _flatParams.Dispose();
        _shardParam.ZeroGrad();
        _shardParam.Dispose();
    }
}

/// <summary>Local SGD (Stich 2019; Lin et al. 2020): every rank steps its own optimizer on its own gradients, and every
/// H steps the parameters are averaged across ranks — H times less communication than synchronous training.</summary>
public sealed class LocalSgdStrategy : ITrainingStrategy
{
    private readonly Module _model;
    private readonly IProcessGroup _group;
    private readonly Optimizer _optimizer;
    private readonly int _period;
    private long _steps;

    public string Name => $"localsgd:{_period}";
    public Optimizer Optimizer => _optimizer;
    public long BytesCommunicated { get; private set; }
    public double CommunicationSeconds { get; private set; }

    public LocalSgdStrategy(Module model, IProcessGroup group, Optimizer optimizer, int period)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(period);
        (_model, _group, _optimizer, _period) = (model, group, optimizer, period);
        TrainingStrategies.BroadcastFromRankZero(model, group);
    }

    public void Step()
    {
        _optimizer.Step();
        _optimizer.ZeroGrad();
        if (++_steps % _period != 0) return;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        BytesCommunicated += TrainingStrategies.AverageParameters(_model.Parameters(), _group);
        CommunicationSeconds += sw.Elapsed.TotalSeconds;
    }

    public void Dispose() => _optimizer.Dispose();
}

/// <summary>DiLoCo (Douillard et al. 2023): H inner steps of the local optimizer (AdamW in the paper), then an outer
/// step: the pseudo-gradient Δ = θ_start − θ_local is averaged across ranks and applied to θ_start by an outer SGD
/// with Nesterov momentum (lr 0.7, momentum 0.9 by default), and every rank continues from the result.
/// With H = 1, outer lr 1, no momentum and an SGD inner optimizer it is exactly synchronous SGD.</summary>
public sealed class DiLoCoStrategy : ITrainingStrategy
{
    private readonly Module _model;
    private readonly IProcessGroup _group;
    private readonly Optimizer _inner;
    private readonly int _period;
    private readonly double _outerLr, _outerMomentum;
    private readonly Tensor[] _params, _start, _velocity;
    private long _steps;

    public string Name => $"diloco:{_period}";
    public Optimizer Optimizer => _inner;
    public long BytesCommunicated { get; private set; }
    public double CommunicationSeconds { get; private set; }

    public DiLoCoStrategy(Module model, IProcessGroup group, Optimizer inner, int period, double outerLr = 0.7, double outerMomentum = 0.9)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(period);
        (_model, _group, _inner, _period, _outerLr, _outerMomentum) = (model, group, inner, period, outerLr, outerMomentum);
        TrainingStrategies.BroadcastFromRankZero(model, group);
        _params = model.Parameters().ToArray();
        using var noGrad = GradMode.NoGrad();
        _start = _params.Select(p => p.Clone().DetachFromScope()).ToArray();
        _velocity = _params.Select(p => Tensor.ZerosLike(p).DetachFromScope()).ToArray();
    }

    public void Step()
    {
        _inner.Step();
        _inner.ZeroGrad();
        if (++_steps % _period != 0) return;
        using var noGrad = GradMode.NoGrad();
        using var scope = new TensorScope();
        // Δ = θ_start − θ_local, averaged over ranks.
        var deltas = _params.Select((p, i) => Ops.Sub(_start[i], p)).ToArray();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        BytesCommunicated += TrainingStrategies.AverageParameters(deltas, _group);
        CommunicationSeconds += sw.Elapsed.TotalSeconds;
        for (int i = 0; i < _params.Length; i++)
        {
            // Outer Nesterov SGD on Δ (torch.optim.SGD semantics): v ← μv + Δ; step = Δ + μv (Nesterov) or v.
            Tensor update;
            if (_outerMomentum != 0)
            {
                using (var mv = Ops.MulScalar(_velocity[i], _outerMomentum))
                using (var v = Ops.Add(mv, deltas[i]))
                    Ops.CopyInto(_velocity[i], v);
                using var mv2 = Ops.MulScalar(_velocity[i], _outerMomentum);
                update = Ops.Add(deltas[i], mv2);
            }
            else update = deltas[i];
            using var scaled = Ops.MulScalar(update, _outerLr);
            using var next = Ops.Sub(_start[i], scaled);
            Ops.CopyInto(_start[i], next);
            Ops.CopyInto(_params[i], next);
        }
    }

    public void Dispose()
    {
        _inner.Dispose();
        foreach (var t in _start.Concat(_velocity)) t.Dispose();
    }
}
