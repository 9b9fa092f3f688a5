using HpcEngine.Autograd;

namespace HpcEngine;

public sealed partial class Tensor
{
    private AccumulateGrad? _accumulator;
    private List<Action<Tensor>>? _gradHooks;

    /// <summary>Computes gradients of this tensor with respect to every leaf that requires grad, summing them into
    /// each leaf's <see cref="Grad"/>. A non-scalar output needs <paramref name="gradient"/> (same shape). The graph is
    /// freed afterwards unless <paramref name="retainGraph"/>.</summary>
    public void Backward(Tensor? gradient = null, bool retainGraph = false) =>
        Engine.Backward(this, gradient, retainGraph);

    /// <summary>Registers a hook called once per backward pass when this leaf's gradient is final (after it has been
    /// summed into <see cref="Grad"/>): data-parallel training launches communication from here while backward goes on.
    /// Returns a handle that removes the hook when disposed.</summary>
    public IDisposable RegisterGradReadyHook(Action<Tensor> hook)
    {
        ArgumentNullException.ThrowIfNull(hook);
        if (!IsLeaf)
            throw new InvalidOperationException("gradient-ready hooks are for leaf tensors (parameters)");
        (_gradHooks ??= new()).Add(hook);
        return new HookHandle(this, hook);
    }

    internal void FireGradHooks()
    {
        if (_gradHooks == null)
            return;
        foreach (var h in _gradHooks.ToArray())
            h(this);
    }

    private sealed class HookHandle(Tensor owner, Action<Tensor> hook) : IDisposable
    {
        public void Dispose() => owner._gradHooks?.Remove(hook);
    }

    internal AccumulateGrad GetOrCreateAccumulator() => _accumulator ??= new AccumulateGrad(this);

    /// <summary>A tensor sharing this one's storage, cut from the graph (no gradient flows through it).</summary>
    public Tensor Detach() => View((int[])_shape.Clone(), (int[])_strides.Clone(), Offset);

    /// <summary>Clears the accumulated gradient (sets it to null and disposes it).</summary>
    public void ZeroGrad()
    {
        Grad?.Dispose();
        Grad = null;
    }

    /// <summary>Marks this leaf as requiring grad and returns it (fluent form).</summary>
    public Tensor RequiresGrad_(bool value = true)
    {
        RequiresGrad = value;
        return this;
    }

    /// <summary>True when an op on this tensor must record the graph.</summary>
    internal bool NeedsGrad => GradMode.IsEnabled && (_requiresGrad || GradFn != null);

    /// <summary>Where gradient for this tensor, used as an op input, must go.</summary>
    internal Node? GradEdge => GradFn ?? (_requiresGrad ? GetOrCreateAccumulator() : null);

    /// <summary>Sum of two gradient handles; both inputs stay owned by the caller.</summary>
    internal static Tensor AddForAccumulation(Tensor a, Tensor b) => Ops.Add(a, b);
}

/// <summary>Records graph nodes for the ops: one helper so every op states its backward rule the same way.</summary>
internal static class Recorder
{
    /// <summary>True when any input needs a gradient and grad mode is on.</summary>
    public static bool Needs(Tensor a) => a.NeedsGrad;

    public static bool Needs(Tensor a, Tensor b) => a.NeedsGrad || b.NeedsGrad;

    public static bool Needs(ReadOnlySpan<Tensor> xs)
    {
        if (!GradMode.IsEnabled)
            return false;
        foreach (var x in xs)
            if (x.NeedsGrad)
                return true;
        return false;
    }

    /// <summary>Attaches a backward rule to <paramref name="output"/>. <paramref name="save"/> lists tensors the rule
    /// reads; the rule receives them, checked for in-place changes, in the same order.</summary>
    public static Tensor Record(
        Tensor output,
        string op,
        Tensor[] inputs,
        Tensor[] save,
        Func<Tensor, Tensor[], Tensor?[]> backward
    )
    {
        var saved = save.Select(t => new SavedTensor(t)).ToArray();
        var next = inputs.Select(i => i.NeedsGrad ? i.GradEdge : null).ToArray();
        var values = saved.Select(s => s.Value).ToArray();
        output.GradFn = new FunctionNode(op, next, g => backward(g, values), saved);
        OpProfile.Current?.Forward(op);
        return output;
    }

    public static Tensor Record(Tensor output, string op, Tensor[] inputs, Func<Tensor, Tensor?[]> backward) =>
        Record(output, op, inputs, [], (g, _) => backward(g));
}
