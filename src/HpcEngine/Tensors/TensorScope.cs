namespace HpcEngine;

/// <summary>Disposes every tensor created on this thread while it is the innermost scope, when the scope itself is
/// disposed: wrap a training step in one so its intermediates go back to the pool. Tensors meant to outlive the step
/// (parameters, running statistics, a loss value kept for logging) are created outside it or moved out with
/// <see cref="Tensor.MoveToOuterScope"/> / <see cref="Tensor.DetachFromScope"/>.
/// Scopes are per thread and nest; this is ambient state by design, like PyTorch's no-grad mode.</summary>
public sealed class TensorScope : IDisposable
{
    [ThreadStatic]
    private static TensorScope? _current;
    private readonly TensorScope? _outer;
    private readonly HashSet<Tensor> _owned = new(ReferenceEqualityComparer.Instance);
    private bool _disposed;

    /// <summary>The innermost scope on this thread, or null.</summary>
    public static TensorScope? Current => _current;

    /// <summary>Opens a scope; it becomes the current one until disposed.</summary>
    public TensorScope()
    {
        _outer = _current;
        _current = this;
    }

    /// <summary>Tensors this scope will dispose.</summary>
    public int Count => _owned.Count;

    internal void Register(Tensor t)
    {
        if (_disposed)
            return;
        _owned.Add(t);
        t.SetScope(this);
    }

    internal void Forget(Tensor t)
    {
        if (_owned.Remove(t))
            t.SetScope(null);
    }

    /// <summary>Keeps <paramref name="t"/> alive past this scope (hands it to the enclosing scope, if any).</summary>
    public Tensor Keep(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        Forget(t);
        _outer?.Register(t);
        return t;
    }

    /// <summary>Disposes every tensor still owned and restores the enclosing scope.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        if (_current != this)
            throw new InvalidOperationException(
                "TensorScope disposed out of order: dispose inner scopes first (use `using`)"
            );
        _disposed = true;
        _current = _outer;
        foreach (var t in _owned.ToArray())
        {
            t.SetScope(null);
            t.Dispose();
        }
        _owned.Clear();
    }
}
