using HpcEngine.Distributed;
using HpcEngine.NN;

namespace HpcEngine.Parallel.ModelParallel;

/// <summary>Building, loading and saving tensor-parallel models.</summary>
public static class TensorParallel
{
    /// <summary><c>mlp-wide</c> (784-1024-1024-10) with its first two linears as a Megatron MLP block — column- then
    /// row-parallel, one allreduce per direction — and the small classifier replicated. Initialised as
    /// <c>Models.Create("mlp-wide", generator)</c> would be, so both start from the same weights.</summary>
    public static Sequential MlpWide(IProcessGroup tp, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(tp);
        var g = generator ?? Generator.Default;
        return new Sequential(
            new Flatten(),
            new ColumnParallelLinear(784, 1024, tp, generator: g),
            new ReLU(),
            new RowParallelLinear(1024, 1024, tp, generator: g),
            new ReLU(),
            new Linear(1024, 10, generator: g)
        );
    }

    /// <summary>Leaf modules with their dotted names ("1", "block.fc" ...).</summary>
    private static IEnumerable<(string Name, Module Module)> Leaves(Module m, string prefix = "")
    {
        var children = m.NamedChildren().ToList();
        if (children.Count == 0)
        {
            yield return (prefix, m);
            yield break;
        }
        foreach (var (name, child) in children)
        foreach (var leaf in Leaves(child, prefix.Length == 0 ? name : prefix + "." + name))
            yield return leaf;
    }

    private static string Join(string module, string param) => module.Length == 0 ? param : module + "." + param;

    /// <summary>Loads a full (single-process) state dict: parallel layers take their shard, others the whole
    /// tensor.</summary>
    public static void LoadFullStateDict(Module model, IReadOnlyDictionary<string, Tensor> full)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(full);
        using var noGrad = Autograd.GradMode.NoGrad();
        foreach (var (name, module) in Leaves(model))
        foreach (var (pname, p) in module.NamedParameters())
        {
            string key = Join(name, pname);
            if (!full.TryGetValue(key, out var t))
                throw new KeyNotFoundException($"the full state dict has no '{key}'");
            using var shard = module is ITensorParallelModule tp ? tp.Shard(pname, t) : t.Clone();
            if (!shard.ShapeArray.SequenceEqual(p.ShapeArray))
                throw new ShapeMismatchException(
                    $"'{key}': the shard of the full tensor {Shapes.Format(t.ShapeArray)} is "
                        + $"{Shapes.Format(shard.ShapeArray)}, the parameter {Shapes.Format(p.ShapeArray)}"
                );
            Ops.CopyInto(p, shard);
            p.BumpVersion();
        }
    }

    /// <summary>The full state dict reassembled from the shards (a collective: every rank of every parallel layer's
    /// group calls it), under the single-process model's names — what one safetensors file of the model
    /// holds.</summary>
    public static Dictionary<string, Tensor> FullStateDict(Module model) => Full(model, grads: false);

    /// <summary>Writes the full model as one safetensors file under the single-process names (rank 0 of <paramref
    /// name="group"/> writes; every rank must call it, since reassembling is a collective). The file loads into the
    /// single-process model, or into any other tensor-parallel layout with <see cref="LoadFullStateDict"/>.</summary>
    public static void SaveFull(Module model, IProcessGroup group, string path)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(path);
        var full = FullStateDict(model);
        try
        {
            if (group.Rank == 0)
                IO.Safetensors.Save(path, full, new Dictionary<string, string> { ["format"] = "pt" });
        }
        finally
        {
            foreach (var t in full.Values)
                t.Dispose();
        }
    }

    /// <summary>The full gradients, reassembled like <see cref="FullStateDict"/> (zeros where a parameter has
    /// none).</summary>
    public static Dictionary<string, Tensor> FullGradients(Module model) => Full(model, grads: true);

    private static Dictionary<string, Tensor> Full(Module model, bool grads)
    {
        ArgumentNullException.ThrowIfNull(model);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, module) in Leaves(model))
        foreach (var (pname, p) in module.NamedParameters())
        {
            using var zeros = grads && p.Grad == null ? Tensor.ZerosLike(p) : null;
            var local = grads ? p.Grad ?? zeros! : p;
            result[Join(name, pname)] = module is ITensorParallelModule tp
                ? tp.Unshard(pname, local)
                : local.Detach().Clone().DetachFromScope();
        }
        return result;
    }
}
