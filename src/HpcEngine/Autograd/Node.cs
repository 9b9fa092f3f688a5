namespace HpcEngine.Autograd;

/// <summary>A step of the recorded graph: given the gradient of its output, returns the gradients of its inputs.
/// Nodes are created by differentiable ops; users see them through <see cref="Tensor.GradFn"/>.</summary>
public abstract class Node
{
    private static long _nextSequence;

    /// <summary>Creation order; backward runs ready nodes latest-first, like PyTorch, so gradients of the last layers
    /// become final first (what data-parallel bucketing relies on).</summary>
    internal long Sequence { get; } = Interlocked.Increment(ref _nextSequence);

    /// <summary>The op that recorded this node ("mul", "matmul" ...).</summary>
    public string Name { get; }

    /// <summary>Where each input's gradient goes: the producing node, an accumulator for a leaf, or null.</summary>
    internal Node?[] Next { get; }

    internal bool Released { get; private set; }

    /// <summary>A node named <paramref name="name"/> (what error messages and graph dumps show) whose inputs' gradient
    /// nodes are <paramref name="next"/> (null for an input that needs no gradient).</summary>
    protected Node(string name, Node?[] next)
    {
        Name = name;
        Next = next;
    }

    /// <summary>Computes input gradients from the output gradient. Entries may be null where an input needs
    /// none.</summary>
    internal abstract Tensor?[] Apply(Tensor gradOutput);

    /// <summary>Frees what the node saved for backward.</summary>
    internal virtual void Release() => Released = true;

    /// <inheritdoc/>
    public override string ToString() => Name + "Backward";
}

/// <summary>A node whose backward rule is a function over saved tensors.</summary>
internal sealed class FunctionNode : Node
{
    private readonly Func<Tensor, Tensor?[]> _backward;
    private readonly SavedTensor[] _saved;

    public FunctionNode(string name, Node?[] next, Func<Tensor, Tensor?[]> backward, SavedTensor[] saved)
        : base(name, next)
    {
        _backward = backward;
        _saved = saved;
    }

    internal override Tensor?[] Apply(Tensor gradOutput)
    {
        if (Released)
            throw new InvalidOperationException(
                $"backward through '{Name}' a second time: its saved tensors were freed after the first backward; pass "
                    + $"retainGraph: true to the first Backward()"
            );
        foreach (var s in _saved)
            s.CheckVersion(Name);
        return _backward(gradOutput);
    }

    internal override void Release()
    {
        base.Release();
        foreach (var s in _saved)
            s.Dispose();
    }
}

/// <summary>The sink for a leaf's gradient: sums into <see cref="Tensor.Grad"/> and then fires the leaf's
/// gradient-ready hooks (the gradient is final for this backward pass at that moment).</summary>
internal sealed class AccumulateGrad : Node
{
    private readonly WeakReference<Tensor> _leaf;

    public AccumulateGrad(Tensor leaf)
        : base("accumulate_grad", [])
    {
        _leaf = new WeakReference<Tensor>(leaf);
    }

    internal override Tensor?[] Apply(Tensor grad)
    {
        if (!_leaf.TryGetTarget(out var leaf) || leaf.IsDisposed)
            return [];
        using (GradMode.NoGrad())
        {
            if (leaf.Grad == null || leaf.Grad.IsDisposed)
            {
                // Own a private contiguous copy: the incoming gradient may be a broadcast view or shared.
                var g = grad.Contiguous();
                if (g.Storage.RefCount > 1)
                {
                    g.Dispose();
                    g = grad.Clone();
                }
                leaf.Grad = g.DetachFromScope();
            }
            else
            {
                leaf.Grad.AddInPlace(grad);
            }
        }
        leaf.FireGradHooks();
        return [];
    }
}

/// <summary>A tensor kept for backward, with the storage version at save time so a later in-place change is caught
/// instead of silently giving a wrong gradient.</summary>
internal sealed class SavedTensor : IDisposable
{
    private readonly Tensor _alias;
    private readonly int _version;
    private readonly string _what;

    public SavedTensor(Tensor t)
    {
        _alias = t.Alias().DetachFromScope();
        _version = t.StorageVersion;
        _what = $"{t.DType.TorchName()} tensor of shape {Shapes.Format(t.Shape)}";
    }

    public Tensor Value => _alias;

    public void CheckVersion(string op)
    {
        if (_alias.IsDisposed)
            throw new InvalidOperationException($"a tensor saved by '{op}' for backward was already freed");
        if (_alias.StorageVersion != _version)
            throw new InvalidOperationException(
                $"a {_what} saved by '{op}' for backward was modified by an in-place operation (version {_version} -> "
                    + $"{_alias.StorageVersion}); use the out-of-place op or Clone() first"
            );
    }

    public void Dispose() => _alias.Dispose();
}
