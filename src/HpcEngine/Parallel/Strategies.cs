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
    /// <summary>The entries of <paramref name="state"/> under <paramref name="prefix"/>, with the prefix removed.</summary>
    public static Dictionary<string, Tensor> Under(IReadOnlyDictionary<string, Tensor> state, string prefix) =>
        state.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);

    public static void AddCodec(Dictionary<string, Tensor> into, Compression.GradientCodec? codec)
    {
        if (codec == null) return;
        foreach (var (k, v) in codec.StateDict()) into["codec." + k] = v;
    }
}

/// <summary>Builds strategies from their names: sync, zero1, ssp:K, ssp:inf, localsgd:H, diloco:H.</summary>
public static class TrainingStrategies
{
    /// <summary>The strategies this factory builds, with their parameters.</summary>
    public const string Known = StrategySpec.Grammar;

    /// <param name="spec">sync, zero1, ssp:K, ssp:inf, ssp:K:S (the last S ranks are dedicated servers), localsgd:H or diloco:H.</param>
    /// <param name="model">This rank's replica.</param>
    /// <param name="group">The ranks that train together.</param>
    /// <param name="makeOptimizer">Builds the optimizer over the parameters it is given (zero1 and ssp pass a shard).</param>
    /// <param name="codec">Gradient compression: sync compresses the gradient buckets, localsgd and diloco the
    /// pseudo-gradients they average; zero1 and ssp reject one.</param>
    public static ITrainingStrategy Create(string spec, Module model, IProcessGroup group, Func<IEnumerable<Tensor>, Optimizer> makeOptimizer, Compression.GradientCodec? codec = null) =>
        Create(StrategySpec.Parse(spec), model, group, makeOptimizer, codec);

    /// <summary>Builds the strategy <paramref name="spec"/> describes (see the string overload).</summary>
    public static ITrainingStrategy Create(StrategySpec spec, Module model, IProcessGroup group, Func<IEnumerable<Tensor>, Optimizer> makeOptimizer, Compression.GradientCodec? codec = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(makeOptimizer);
        if (codec != null && !spec.AcceptsCodec)
            throw new ArgumentException($"compression ({codec.Name}) composes with sync, localsgd and diloco, not with '{spec}'");
        if (spec.DedicatedServers >= group.Size)
            throw new ArgumentException($"strategy '{spec}': the dedicated server count must be between 1 and {group.Size - 1} (the group has {group.Size} ranks)");
        return spec.Kind switch
        {
            StrategyKind.Sync => new SyncStrategy(model, group, makeOptimizer(model.Parameters()), codec),
            StrategyKind.Zero1 => new Zero1Strategy(model, group, makeOptimizer),
            StrategyKind.ParameterServer => new ParameterServerStrategy(model, group, makeOptimizer, spec.StalenessBound, spec.DedicatedServers),
            // Local SGD is the outer step of DiLoCo with learning rate 1 and no momentum: θ ← θ_start − avg(θ_start − θ_local)
            // = avg(θ_local); going through the pseudo-gradient lets a codec compress what is averaged.
            StrategyKind.LocalSgd => new DiLoCoStrategy(model, group, makeOptimizer(model.Parameters()), spec.Period, outerLr: 1, outerMomentum: 0, codec, name: spec.ToString()),
            _ => new DiLoCoStrategy(model, group, makeOptimizer(model.Parameters()), spec.Period, codec: codec),
        };
    }

    /// <summary>Broadcasts rank 0's parameters and buffers so every replica starts equal.</summary>
    internal static void BroadcastFromRankZero(Module model, IProcessGroup group)
    {
        using var noGrad = GradMode.NoGrad();
        var works = model.StateDict().Select(kv => kv.Value).Where(t => t.DType.IsFloating()).Select(t => group.Broadcast(t)).ToArray();
        foreach (var w in works) w.Wait();
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
    public double ResidualNorm => _ddp.Codec?.TotalResidualNorm() ?? 0;
    public double CompressSeconds => _ddp.Codec?.CompressSeconds ?? 0;

    /// <summary>The wrapped DDP (for NoSync accumulation steps).</summary>
    public DistributedDataParallel Ddp => _ddp;

    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars) StateDict()
    {
        var t = new Dictionary<string, Tensor>();
        StrategyState.AddCodec(t, _ddp.Codec);
        return (t, new());
    }

    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> scalars) =>
        _ddp.Codec?.LoadStateDict(StrategyState.Under(tensors, "codec."));

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

    /// <summary>This rank's shard of the optimizer state (rank 0's trainer file holds only shard 0).</summary>
    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars) StateDict() => _optimizer.StateDict();

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

/// <summary>DiLoCo (Douillard et al. 2023): H inner steps of the local optimizer (AdamW in the paper), then an outer
/// step: the pseudo-gradient Δ = θ_start − θ_local is averaged across ranks (through a codec when one is given, with
/// its error feedback) and applied to θ_start by an outer SGD with Nesterov momentum (lr 0.7, momentum 0.9 by
/// default), and every rank continues from the result. With outer lr 1 and no momentum it is Local SGD (Stich 2019);
/// with H = 1 as well and an SGD inner optimizer it is exactly synchronous SGD.</summary>
public sealed class DiLoCoStrategy : ITrainingStrategy
{
    private readonly IProcessGroup _group;
    private readonly Optimizer _inner;
    private readonly int _period;
    private readonly double _outerLr, _outerMomentum;
    private readonly Compression.GradientCodec? _codec;
    private readonly Tensor[] _params, _start, _velocity;
    private readonly Tensor _flat;
    private readonly int[][] _shapes;
    private long _steps;

    public string Name { get; }
    public Optimizer Optimizer => _inner;
    public long BytesCommunicated { get; private set; }
    public double CommunicationSeconds { get; private set; }
    public double ResidualNorm => _codec?.TotalResidualNorm() ?? 0;
    public double CompressSeconds => _codec?.CompressSeconds ?? 0;

    public DiLoCoStrategy(Module model, IProcessGroup group, Optimizer inner, int period, double outerLr = 0.7, double outerMomentum = 0.9,
        Compression.GradientCodec? codec = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(period);
        (_group, _inner, _period, _outerLr, _outerMomentum, _codec) = (group, inner, period, outerLr, outerMomentum, codec);
        Name = name ?? $"diloco:{period.ToString(CultureInfo.InvariantCulture)}";
        TrainingStrategies.BroadcastFromRankZero(model, group);
        _params = model.Parameters().ToArray();
        using var noGrad = GradMode.NoGrad();
        _start = _params.Select(p => p.Clone().DetachFromScope()).ToArray();
        _velocity = _params.Select(p => Tensor.ZerosLike(p).DetachFromScope()).ToArray();
        // Δ is averaged where the parameters live (a device group takes device tensors; codecs get a host copy).
        _flat = Tensor.Empty([_params.Sum(p => p.NumEl)], DType.Float32, _params.Length > 0 ? _params[0].Device : Device.Cpu, zeroed: true).DetachFromScope();
        _shapes = _params.Select(p => p.ShapeArray).ToArray();
    }

    /// <summary>This rank's parameters (replicas differ between averagings), θ_start, the outer velocity, the inner
    /// optimizer's state, the inner step count and the codec's state.</summary>
    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars) StateDict()
    {
        var t = new Dictionary<string, Tensor>();
        for (int i = 0; i < _params.Length; i++)
        {
            t[$"param.{i}"] = _params[i].Detach().Clone().DetachFromScope();
            t[$"start.{i}"] = _start[i].Clone().DetachFromScope();
            t[$"velocity.{i}"] = _velocity[i].Clone().DetachFromScope();
        }
        StrategyState.AddCodec(t, _codec);
        // The inner optimizer's state differs per rank too (its moments come from this rank's gradients).
        var (innerTensors, innerScalars) = _inner.StateDict();
        foreach (var (k, v) in innerTensors) t["inner." + k] = v;
        var scalars = innerScalars.ToDictionary(kv => "inner." + kv.Key, kv => kv.Value);
        scalars["steps"] = _steps.ToString(CultureInfo.InvariantCulture);
        return (t, scalars);
    }

    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> scalars)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(scalars);
        using var noGrad = GradMode.NoGrad();
        Tensor Get(string k) => tensors.TryGetValue(k, out var v) ? v : throw new InvalidDataException($"{Name} state: '{k}' is missing");
        for (int i = 0; i < _params.Length; i++)
        {
            Ops.CopyInto(_params[i], Get($"param.{i}"));
            Ops.CopyInto(_start[i], Get($"start.{i}"));
            Ops.CopyInto(_velocity[i], Get($"velocity.{i}"));
        }
        _steps = scalars.TryGetValue("steps", out var st) ? long.Parse(st, CultureInfo.InvariantCulture) : throw new InvalidDataException($"{Name} state: 'steps' is missing");
        _codec?.LoadStateDict(StrategyState.Under(tensors, "codec."));
        _inner.LoadStateDict(StrategyState.Under(tensors, "inner."),
            scalars.Where(kv => kv.Key.StartsWith("inner.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key["inner.".Length..], kv => kv.Value));
    }

    public void Step()
    {
        _inner.Step();
        _inner.ZeroGrad();
        if (++_steps % _period != 0) return;
        using var noGrad = GradMode.NoGrad();
        using var scope = new TensorScope();
        // Δ = θ_start − θ_local, laid end to end and averaged over ranks.
        int at = 0;
        for (int i = 0; i < _params.Length; i++)
        {
            using var delta = Ops.Sub(_start[i], _params[i]);
            using var flat = delta.Reshape(-1);
            using var dst = _flat.Narrow(0, at, _params[i].NumEl);
            Ops.CopyInto(dst, flat);
            at += _params[i].NumEl;
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        if (_codec == null)
        {
            _group.AllReduce(_flat, new AllReduceOptions { Op = ReduceOp.Avg }).Wait();
            BytesCommunicated += (long)_flat.NumEl * 4;
        }
        else
        {
            // The codecs are host code: a device Δ is compressed from a host copy and the average copied back.
            bool stage = !_flat.IsCpu && !_codec.TakesDeviceTensors;
            using var host = stage ? Tensor.Empty(_flat.ShapeArray, DType.Float32) : _flat.Alias();
            if (stage) Ops.CopyAcross(_flat, host);
            var exchange = _codec.Exchange(host, _shapes, _group, key: 0);
            exchange.Work.Wait();
            if (stage) Ops.CopyAcross(host, _flat);
            BytesCommunicated += exchange.EncodedBytes;
        }
        CommunicationSeconds += sw.Elapsed.TotalSeconds;
        at = 0;
        for (int i = 0; i < _params.Length; i++)
        {
            using var slice = _flat.Narrow(0, at, _params[i].NumEl);
            using var delta = slice.Reshape(_params[i].ShapeArray);
            at += _params[i].NumEl;
            // Outer SGD on Δ (torch.optim.SGD semantics): v ← μv + Δ; step = Δ + μv (Nesterov) or v.
            Tensor update;
            if (_outerMomentum != 0)
            {
                using (var mv = Ops.MulScalar(_velocity[i], _outerMomentum))
                using (var v = Ops.Add(mv, delta))
                    Ops.CopyInto(_velocity[i], v);
                using var mv2 = Ops.MulScalar(_velocity[i], _outerMomentum);
                update = Ops.Add(delta, mv2);
            }
            else update = delta;
            using var scaled = Ops.MulScalar(update, _outerLr);
            using var next = Ops.Sub(_start[i], scaled);
            Ops.CopyInto(_start[i], next);
            Ops.CopyInto(_params[i], next);
        }
    }

    public void Dispose()
    {
        _inner.Dispose();
        _flat.Dispose();
        foreach (var t in _start.Concat(_velocity)) t.Dispose();
    }
}
