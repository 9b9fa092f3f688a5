using HpcEngine.Autograd;

namespace HpcEngine.NN;

/// <summary>Base of every layer and model, shaped like <c>torch.nn.Module</c>: named parameters, buffers and child
/// modules in registration order; train/eval mode; a state dict whose names match PyTorch's for the same
/// architecture ("0.weight", "features.1.running_mean" ...), so weights map 1:1. A module owns its parameters and
/// buffers and disposes them with itself.</summary>
public abstract class Module : IDisposable
{
    private readonly List<(string Name, Tensor Value)> _parameters = new();
    private readonly List<(string Name, Tensor Value)> _buffers = new();
    private readonly List<(string Name, Module Value)> _modules = new();
    private bool _disposed;

    /// <summary>True in training mode (dropout active, batch norm on batch statistics).</summary>
    public bool Training { get; private set; } = true;

    /// <summary>Runs the module.</summary>
    public abstract Tensor Forward(Tensor input);

    /// <summary>Shorthand for <see cref="Forward"/>.</summary>
    public Tensor Call(Tensor input) => Forward(input);

    /// <summary>Registers <paramref name="value"/> as trainable parameter <paramref name="name"/> (it gets
    /// requires-grad) and returns it.</summary>
    protected Tensor RegisterParameter(string name, Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        CheckName(name);
        value.DetachFromScope();
        value.RequiresGrad = true;
        value.Name = name;
        _parameters.Add((name, value));
        return value;
    }

    /// <summary>Registers <paramref name="value"/> as buffer <paramref name="name"/>: state that is saved and loaded
    /// but not trained (batch norm's running statistics).</summary>
    protected Tensor RegisterBuffer(string name, Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        CheckName(name);
        value.DetachFromScope();
        value.Name = name;
        _buffers.Add((name, value));
        return value;
    }

    /// <summary>Registers <paramref name="module"/> as child <paramref name="name"/> (its state-dict keys get the
    /// prefix <c>name.</c>) and returns it.</summary>
    protected T RegisterModule<T>(string name, T module)
        where T : Module
    {
        ArgumentNullException.ThrowIfNull(module);
        CheckName(name);
        _modules.Add((name, module));
        return module;
    }

    private void CheckName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('.'))
            throw new ArgumentException($"'{name}' is not a valid member name (non-empty, no '.')", nameof(name));
        if (
            _parameters.Any(p => p.Name == name)
            || _buffers.Any(b => b.Name == name)
            || _modules.Any(m => m.Name == name)
        )
            throw new ArgumentException($"'{name}' is already registered on {GetType().Name}", nameof(name));
    }

    /// <summary>Direct children, in registration order.</summary>
    public IEnumerable<(string Name, Module Module)> NamedChildren() => _modules.Select(m => (m.Name, m.Value));

    /// <summary>Every parameter with its dotted path, in PyTorch's order (own first, then children).</summary>
    public IEnumerable<(string Name, Tensor Parameter)> NamedParameters(string prefix = "")
    {
        foreach (var (n, p) in _parameters)
            yield return (prefix + n, p);
        foreach (var (n, m) in _modules)
        foreach (var x in m.NamedParameters(prefix + n + "."))
            yield return x;
    }

    /// <summary>Every parameter, in <see cref="NamedParameters"/> order.</summary>
    public IEnumerable<Tensor> Parameters() => NamedParameters().Select(p => p.Parameter);

    /// <summary>Every buffer (running statistics ...) with its dotted path.</summary>
    public IEnumerable<(string Name, Tensor Buffer)> NamedBuffers(string prefix = "")
    {
        foreach (var (n, b) in _buffers)
            yield return (prefix + n, b);
        foreach (var (n, m) in _modules)
        foreach (var x in m.NamedBuffers(prefix + n + "."))
            yield return x;
    }

    /// <summary>Parameters and buffers by dotted name, in PyTorch's state-dict order (per module: parameters, then
    /// buffers, then children). The tensors are the module's own: copy them to keep a snapshot.</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> StateDict(string prefix = "")
    {
        var r = new List<KeyValuePair<string, Tensor>>();
        foreach (var (n, p) in _parameters)
            r.Add(new(prefix + n, p));
        foreach (var (n, b) in _buffers)
            r.Add(new(prefix + n, b));
        foreach (var (n, m) in _modules)
            r.AddRange(m.StateDict(prefix + n + "."));
        return r;
    }

    /// <summary>Copies values into the parameters and buffers. With <paramref name="strict"/>, missing and unexpected
    /// names are an error listing them; a shape mismatch is always an error naming the entry.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(state);
        var own = StateDict();
        var names = own.Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal);
        if (strict)
        {
            var missing = names.Where(n => !state.ContainsKey(n)).ToArray();
            var unexpected = state.Keys.Where(n => !names.Contains(n)).ToArray();
            if (missing.Length > 0 || unexpected.Length > 0)
                throw new KeyNotFoundException(
                    $"state dict does not match {GetType().Name}: missing [{string.Join(", ", missing)}], unexpected [{string.Join(", ", unexpected)}]"
                );
        }
        using var noGrad = GradMode.NoGrad();
        foreach (var (name, target) in own)
        {
            if (!state.TryGetValue(name, out var src))
                continue;
            if (!src.Shape.SequenceEqual(target.Shape))
                throw new ShapeMismatchException(
                    $"state dict entry '{name}' has shape {Shapes.Format(src.Shape)} but the module expects "
                        + $"{Shapes.Format(target.Shape)}"
                );
            Ops.CopyInto(target, src);
        }
    }

    /// <summary>Sets training mode on this module and every descendant.</summary>
    public Module Train(bool on = true)
    {
        Training = on;
        foreach (var (_, m) in _modules)
            m.Train(on);
        return this;
    }

    /// <summary>Sets evaluation mode (same as Train(false)).</summary>
    public Module Eval() => Train(false);

    /// <summary>Clears every parameter's gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters())
            p.ZeroGrad();
    }

    /// <summary>Number of parameter elements.</summary>
    public long ParameterCount() => Parameters().Sum(p => (long)p.NumEl);

    /// <summary>Moves every parameter and buffer to <paramref name="device"/> in place (the same tensor objects, so
    /// optimizers built on them keep working; build optimizers after the move, as their state lives where the
    /// parameters are). Gradients are dropped.</summary>
    public Module To(Device device)
    {
        foreach (var (_, p) in NamedParameters())
            p.MoveStorageTo(device);
        foreach (var (_, b) in NamedBuffers())
            b.MoveStorageTo(device);
        return this;
    }

    /// <summary>A one-line-per-module description, like PyTorch's repr.</summary>
    public override string ToString() => Describe("");

    private string Describe(string indent)
    {
        if (_modules.Count == 0)
            return $"{GetType().Name}({ExtraRepr()})";
        var sb = new System.Text.StringBuilder($"{GetType().Name}(\n");
        foreach (var (n, m) in _modules)
            sb.Append(indent).Append("  (").Append(n).Append("): ").Append(m.Describe(indent + "  ")).Append('\n');
        return sb.Append(indent).Append(')').ToString();
    }

    /// <summary>The layer's configuration for <see cref="ToString"/>.</summary>
    protected virtual string ExtraRepr() => "";

    /// <summary>Disposes parameters, buffers and children.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var (_, p) in _parameters)
        {
            p.ZeroGrad();
            p.Dispose();
        }
        foreach (var (_, b) in _buffers)
            b.Dispose();
        foreach (var (_, m) in _modules)
            m.Dispose();
        GC.SuppressFinalize(this);
    }
}
