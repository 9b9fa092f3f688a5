using System.Globalization;
using HpcEngine.Autograd;

namespace HpcEngine.Optim;

/// <summary>Base of the optimizers: a list of parameters, a learning rate, per-parameter state tensors, and a state
/// dict (tensors named "state.{i}.{buffer}" plus string hyper-parameters) that checkpoints save and restore
/// exactly.</summary>
public abstract class Optimizer : IDisposable
{
    private readonly Dictionary<(int, string), Tensor> _state = new();

    /// <summary>The parameters, in the order given (state is keyed by this index).</summary>
    public IReadOnlyList<Tensor> Parameters { get; }

    private double _lr;
    private readonly Dictionary<Device, Tensor> _deviceLr = new();

    /// <summary>Current learning rate (schedules set it each step). The backends' steps read it from a 0-dim tensor on
    /// the parameters' device, written when it is set: a captured CUDA-graph step replays with the rate set
    /// last.</summary>
    public double Lr
    {
        get => _lr;
        set
        {
            _lr = value;
            foreach (var t in _deviceLr.Values)
                t.FillRaw(value);
        }
    }

    /// <summary>Number of Step() calls made.</summary>
    public long Steps { get; private set; }

    /// <summary>An optimizer of <paramref name="parameters"/> (those that require gradients) with learning rate
    /// <paramref name="lr"/>.</summary>
    protected Optimizer(IEnumerable<Tensor> parameters, double lr)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(lr >= 0))
            throw new ArgumentOutOfRangeException(nameof(lr), $"learning rate must be non-negative, got {lr}");
        Parameters = parameters.ToArray();
        foreach (var p in Parameters)
        {
            if (!p.RequiresGrad)
                throw new ArgumentException(
                    $"optimizer: parameter {p.Name ?? Shapes.Format(p.Shape)} does not require grad"
                );
            if (p.DType != DType.Float32)
                throw new DTypeMismatchException(
                    $"optimizer: parameters must be float32 (master weights), got {p.DType.TorchName()} for {p.Name}"
                );
        }
        Lr = lr;
        // The device copies of the rate exist before any step, so a capture never records their creation.
        foreach (var device in Parameters.Select(p => p.Device).Distinct())
            LrOn(device);
    }

    /// <summary>The learning rate as a 0-dim float32 tensor on <paramref name="device"/>, for the backend's
    /// step.</summary>
    protected Tensor LrOn(Device device)
    {
        if (!_deviceLr.TryGetValue(device, out var t))
        {
            t = Ops.ScalarOn(_lr, DType.Float32, device).DetachFromScope();
            _deviceLr[device] = t;
        }
        return t;
    }

    /// <summary>Applies one update from the parameters' gradients; parameters without a gradient are skipped.</summary>
    public void Step()
    {
        using var noGrad = GradMode.NoGrad();
        Steps++;
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            if (p.Grad == null)
                continue;
            if (!p.Grad.IsContiguous || !p.IsContiguous)
                throw new InvalidOperationException("optimizer: parameters and gradients must be contiguous");
            Update(i, p, p.Grad);
            p.BumpVersion();
        }
    }

    /// <summary>Sets the step count after CUDA-graph replays, whose host code (which counts) ran only at
    /// capture.</summary>
    internal void SetStepCount(long steps) => Steps = steps;

    /// <summary>Updates parameter <paramref name="index"/> in place.</summary>
    protected abstract void Update(int index, Tensor parameter, Tensor grad);

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters)
            p.ZeroGrad();
    }

    /// <summary>The named state buffer of a parameter, created zero-filled (or by <paramref name="init"/>) on first
    /// use.</summary>
    protected Tensor State(int index, string name, Func<Tensor>? init = null)
    {
        if (!_state.TryGetValue((index, name), out var t))
        {
            t = (init?.Invoke() ?? Tensor.ZerosLike(Parameters[index])).DetachFromScope(); // on the parameter's device
            _state[(index, name)] = t;
        }
        return t;
    }

    /// <summary>Whether parameter <paramref name="index"/> already has state <paramref name="name"/> (created lazily on
    /// its first step).</summary>
    protected bool HasState(int index, string name) => _state.ContainsKey((index, name));

    /// <summary>Hyper-parameters as strings, saved next to the state tensors.</summary>
    protected virtual IEnumerable<KeyValuePair<string, string>> HyperParameters() => [];

    /// <summary>State tensors (copies) and scalars: what a checkpoint needs to resume bit for bit.</summary>
    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars) StateDict()
    {
        var tensors = _state.ToDictionary(
            kv => $"state.{kv.Key.Item1}.{kv.Key.Item2}",
            kv => kv.Value.Clone().DetachFromScope()
        );
        var scalars = new Dictionary<string, string>
        {
            ["optimizer"] = GetType().Name,
            ["lr"] = Lr.ToString("R", CultureInfo.InvariantCulture),
            ["steps"] = Steps.ToString(CultureInfo.InvariantCulture),
            ["param_count"] = Parameters.Count.ToString(CultureInfo.InvariantCulture),
        };
        foreach (var (k, v) in HyperParameters())
            scalars["hp." + k] = v;
        return (tensors, scalars);
    }

    /// <summary>Restores <see cref="StateDict"/> output; a different optimizer or parameter count is an
    /// error.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string> scalars)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(scalars);
        if (!scalars.TryGetValue("optimizer", out var kind) || kind != GetType().Name)
            throw new InvalidOperationException(
                $"optimizer state is for '{(kind ?? "unknown")}', not {GetType().Name}"
            );
        if (scalars["param_count"] != Parameters.Count.ToString(CultureInfo.InvariantCulture))
            throw new InvalidOperationException(
                $"optimizer state has {scalars["param_count"]} parameters, this optimizer {Parameters.Count}"
            );
        foreach (var t in _state.Values)
            t.Dispose();
        _state.Clear();
        foreach (var (name, t) in tensors)
        {
            var parts = name.Split('.', 3);
            if (
                parts.Length != 3
                || parts[0] != "state"
                || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out int i)
                || i < 0
                || i >= Parameters.Count
            )
                throw new InvalidOperationException($"optimizer state: unexpected entry '{name}'");
            // State lives where its parameter does (a CPU checkpoint loaded into a GPU model).
            _state[(i, parts[2])] = (
                t.Device == Parameters[i].Device ? t.Clone() : Ops.MoveNoGrad(t, Parameters[i].Device)
            ).DetachFromScope();
        }
        Lr = double.Parse(scalars["lr"], CultureInfo.InvariantCulture);
        Steps = long.Parse(scalars["steps"], CultureInfo.InvariantCulture);
    }

    /// <summary>Releases the state tensors (not the parameters).</summary>
    public void Dispose()
    {
        foreach (var t in _state.Values.Concat(_deviceLr.Values))
            t.Dispose();
        _state.Clear();
        _deviceLr.Clear();
        GC.SuppressFinalize(this);
    }
}
