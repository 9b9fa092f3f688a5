using System.Globalization;
using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

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
    private readonly double _outerLr,
        _outerMomentum;
    private readonly Compression.GradientCodec? _codec;
    private Compression.HostStaging? _staging;
    private readonly Tensor[] _params,
        _start,
        _velocity;
    private readonly Tensor _flat;
    private readonly int[][] _shapes;
    private long _steps;
    private int _sinceOuter; // inner steps since the last outer step

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public Optimizer Optimizer => _inner;

    /// <inheritdoc/>
    public long BytesCommunicated { get; private set; }

    /// <inheritdoc/>
    public double CommunicationSeconds { get; private set; }

    /// <inheritdoc/>
    public double ResidualNorm => _codec?.TotalResidualNorm() ?? 0;

    /// <inheritdoc/>
    public double CompressSeconds => _codec?.CompressSeconds ?? 0;

    /// <summary>DiLoCo over <paramref name="group"/>: <paramref name="period"/> steps of the <paramref name="inner"/>
    /// optimizer per rank, then the averaged pseudo-gradient (optionally through <paramref name="codec"/>) is applied
    /// by Nesterov SGD with <paramref name="outerLr"/> and <paramref name="outerMomentum"/>.</summary>
    public DiLoCoStrategy(
        Module model,
        IProcessGroup group,
        Optimizer inner,
        int period,
        double outerLr = 0.7,
        double outerMomentum = 0.9,
        Compression.GradientCodec? codec = null,
        string? name = null
    )
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(period);
        (_group, _inner, _period, _outerLr, _outerMomentum, _codec) = (
            group,
            inner,
            period,
            outerLr,
            outerMomentum,
            codec
        );
        Name = name ?? $"diloco:{period.ToString(CultureInfo.InvariantCulture)}";
        TrainingStrategies.BroadcastFromRankZero(model, group);
        _params = model.Parameters().ToArray();
        using var noGrad = GradMode.NoGrad();
        _start = _params.Select(p => p.Clone().DetachFromScope()).ToArray();
        _velocity = _params.Select(p => Tensor.ZerosLike(p).DetachFromScope()).ToArray();
        // Δ is averaged where the parameters live (a device group takes device tensors; codecs get a host copy).
        _flat = Tensor
            .Empty(
                [_params.Sum(p => p.NumEl)],
                DType.Float32,
                _params.Length > 0 ? _params[0].Device : Device.Cpu,
                zeroed: true
            )
            .DetachFromScope();
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
        foreach (var (k, v) in innerTensors)
            t["inner." + k] = v;
        var scalars = innerScalars.ToDictionary(kv => "inner." + kv.Key, kv => kv.Value);
        scalars["steps"] = _steps.ToString(CultureInfo.InvariantCulture);
        scalars["since_outer"] = _sinceOuter.ToString(CultureInfo.InvariantCulture);
        return (t, scalars);
    }

    /// <inheritdoc/>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> scalars)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(scalars);
        using var noGrad = GradMode.NoGrad();
        Tensor Get(string k) =>
            tensors.TryGetValue(k, out var v) ? v : throw new InvalidDataException($"{Name} state: '{k}' is missing");
        for (int i = 0; i < _params.Length; i++)
        {
            Ops.CopyInto(_params[i], Get($"param.{i}"));
            Ops.CopyInto(_start[i], Get($"start.{i}"));
            Ops.CopyInto(_velocity[i], Get($"velocity.{i}"));
        }
        _steps = scalars.TryGetValue("steps", out var st)
            ? long.Parse(st, CultureInfo.InvariantCulture)
            : throw new InvalidDataException($"{Name} state: 'steps' is missing");
        // Checkpoints from before forced commits existed hold no "since_outer": windows were then whole periods.
        _sinceOuter = scalars.TryGetValue("since_outer", out var so)
            ? int.Parse(so, CultureInfo.InvariantCulture)
            : (int)(_steps % _period);
        _codec?.LoadStateDict(StrategyState.Under(tensors, "codec."));
        _inner.LoadStateDict(
            StrategyState.Under(tensors, "inner."),
            scalars
                .Where(kv => kv.Key.StartsWith("inner.", StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key["inner.".Length..], kv => kv.Value)
        );
    }

    /// <inheritdoc/>
    public bool StepCommitted => _sinceOuter == 0;

    /// <inheritdoc/>
    public bool CommitsEveryStep => _period == 1;

    /// <inheritdoc/>
    public bool IsPerRankState(string key) => StrategyState.IsCodecPerRank(key);

    /// <inheritdoc/>
    public void Step()
    {
        _inner.Step();
        _inner.ZeroGrad();
        _steps++;
        if (++_sinceOuter == _period)
            OuterStep();
    }

    /// <summary>An outer step now when inner steps are pending: the window ends early (an elastic run at the end of
    /// each epoch, so that no window spans an epoch boundary and a rollback stays inside the epoch).</summary>
    public void Commit()
    {
        if (_sinceOuter > 0)
            OuterStep();
    }

    private void OuterStep()
    {
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
            // A codec that compresses host memory gets a host copy of a device Δ; the average is copied back.
            _staging ??= new Compression.HostStaging(_codec);
            var exchange = _codec.Exchange(_staging.ForCodec(_flat), _shapes, _group, key: 0);
            exchange.Work.Wait();
            _staging.CopyBack(_flat);
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
            else
                update = delta;
            using var scaled = Ops.MulScalar(update, _outerLr);
            using var next = Ops.Sub(_start[i], scaled);
            Ops.CopyInto(_start[i], next);
            Ops.CopyInto(_params[i], next);
        }
        _sinceOuter = 0; // only once the exchange finished here: a failed one leaves the window open
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _inner.Dispose();
        _staging?.Dispose();
        _flat.Dispose();
        foreach (var t in _start.Concat(_velocity))
            t.Dispose();
    }
}
