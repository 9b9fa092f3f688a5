namespace HpcEngine.Autograd;

/// <summary>Runs reverse mode over the recorded graph. Dependency counting: a node runs once every consumer of its
/// output has handed in a gradient; gradients for the same node are summed. Among ready nodes the latest created runs
/// first. Each gradient handed between nodes is owned by the engine and disposed as soon as its consumer has run, so
/// peak memory follows the graph, not the step.</summary>
internal static class Engine
{
    public static void Backward(Tensor root, Tensor? gradient, bool retainGraph)
    {
        root.CheckAlive();
        if (root.GradFn == null)
        {
            if (!root.RequiresGrad)
                throw new InvalidOperationException(
                    "backward() on a tensor that does not require grad and has no grad_fn: nothing to differentiate"
                );
        }
        if (gradient == null && root.NumEl != 1)
            throw new ShapeMismatchException(
                $"backward: a gradient is only implied for a scalar output; this output has shape "
                    + $"{Shapes.Format(root.Shape)}, so pass gradient: a tensor of that shape"
            );
        if (gradient != null && !gradient.Shape.SequenceEqual(root.Shape))
            throw new ShapeMismatchException(
                $"backward: gradient shape {Shapes.Format(gradient.Shape)} does not match output shape "
                    + $"{Shapes.Format(root.Shape)}"
            );

        Tensor seed;
        using (GradMode.NoGrad())
            seed = gradient != null ? gradient.Alias() : Tensor.OnesLike(root);

        var start = root.GradFn ?? root.GetOrCreateAccumulator();
        var deps = CountDependencies(start);
        var pending = new Dictionary<Node, Tensor>(ReferenceEqualityComparer.Instance) { [start] = seed };
        var ready = new PriorityQueue<Node, long>();
        ready.Enqueue(start, -start.Sequence);
        var visited = new List<Node>();

        using var noGrad = GradMode.NoGrad();
        try
        {
            while (ready.TryDequeue(out var node, out _))
            {
                var grad = pending[node];
                pending.Remove(node);
                visited.Add(node);
                var profile = OpProfile.Current;
                long started = profile != null ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
                var inputGrads = node.Apply(grad);
                profile?.Backward(node.Name, started);
                for (int i = 0; i < node.Next.Length; i++)
                {
                    var next = node.Next[i];
                    if (next == null)
                        continue;
                    var g = i < inputGrads.Length ? inputGrads[i] : null;
                    if (g != null)
                    {
                        // Each slot gets its own handle, so disposing one never frees another's memory.
                        var owned = g.Alias();
                        if (pending.TryGetValue(next, out var acc))
                        {
                            pending[next] = Tensor.AddForAccumulation(acc, owned);
                            acc.Dispose();
                            owned.Dispose();
                        }
                        else
                            pending[next] = owned;
                    }
                    if (--deps[next] == 0)
                    {
                        if (pending.ContainsKey(next))
                            ready.Enqueue(next, -next.Sequence);
                        else
                            MarkSkipped(next, deps, pending, ready);
                    }
                }
                foreach (var g in inputGrads)
                    g?.Dispose();
                grad.Dispose();
            }
        }
        finally
        {
            foreach (var t in pending.Values)
                t.Dispose();
            if (!retainGraph)
                foreach (var n in visited)
                    n.Release();
        }
    }

    /// <summary>A node that got no gradient from any consumer still releases its own consumers' counts.</summary>
    private static void MarkSkipped(
        Node node,
        Dictionary<Node, int> deps,
        Dictionary<Node, Tensor> pending,
        PriorityQueue<Node, long> ready
    )
    {
        foreach (var next in node.Next)
        {
            if (next == null)
                continue;
            if (--deps[next] == 0)
            {
                if (pending.ContainsKey(next))
                    ready.Enqueue(next, -next.Sequence);
                else
                    MarkSkipped(next, deps, pending, ready);
            }
        }
    }

    private static Dictionary<Node, int> CountDependencies(Node start)
    {
        var deps = new Dictionary<Node, int>(ReferenceEqualityComparer.Instance) { [start] = 0 };
        var stack = new Stack<Node>();
        stack.Push(start);
        while (stack.Count > 0)
        {
            var n = stack.Pop();
            foreach (var next in n.Next)
            {
                if (next == null)
                    continue;
                if (deps.TryGetValue(next, out int c))
                    deps[next] = c + 1;
                else
                {
                    deps[next] = 1;
                    stack.Push(next);
                }
            }
        }
        return deps;
    }
}
