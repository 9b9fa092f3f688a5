using System.Text.Json;
using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

/// <summary>Live recovery's state transfer: makes every rank's model (parameters and buffers), optimizer state, the
/// strategy's own state (DiLoCo's outer velocity and start point, for instance) and a few named scalars equal to the
/// root's, over the group, with no disk round trip. Optimizer and strategy state may differ in shape between ranks
/// (one rank stepped, another not yet; a joiner has none): the root sends a manifest first, so the others rebuild
/// theirs from it. Entries the strategy calls per-rank (<see cref="ITrainingStrategy.IsPerRankState"/>) stay where they
/// are.</summary>
public static class StateBroadcast
{
    private sealed record Part(Dictionary<string, string> Scalars, List<Entry> Tensors);

    private sealed record Manifest(Dictionary<string, string> Scalars, Part Optimizer, Part? Strategy);

    private sealed record Entry(string Name, string DType, int[] Shape);

    /// <summary>Every rank calls it with its own model, optimizer and (optionally) strategy; returns the root's
    /// <paramref name="scalars"/>. Models must have the same structure (the same state-dict names and shapes); CPU
    /// tensors.</summary>
    public static Dictionary<string, string> Run(
        IProcessGroup group,
        int root,
        Module model,
        Optimizer optimizer,
        IReadOnlyDictionary<string, string> scalars,
        ITrainingStrategy? strategy = null
    )
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(scalars);
        using (GradMode.NoGrad())
            foreach (var (_, t) in model.StateDict())
                group.Broadcast(t, new BroadcastOptions { Root = root }).Wait();
        var (optTensors, optScalars) = optimizer.StateDict();
        var (stratTensors, stratScalars) = strategy?.StateDict() ?? (new(), new());
        // Per-rank entries (error-feedback residuals) never travel: each rank keeps its own, a joiner starts without.
        var perRank = stratTensors.Where(kv => strategy!.IsPerRankState(kv.Key)).ToDictionary();
        var shared = stratTensors.Where(kv => !perRank.ContainsKey(kv.Key)).ToDictionary();
        try
        {
            bool isRoot = group.Rank == root;
            var manifest = ExchangeManifest(
                group,
                root,
                isRoot
                    ? new Manifest(
                        new Dictionary<string, string>(scalars),
                        Describe(optTensors, optScalars),
                        strategy != null
                            ? Describe(
                                shared,
                                stratScalars.Where(kv => !strategy.IsPerRankState(kv.Key)).ToDictionary()
                            )
                            : null
                    )
                    : null
            );
            // A partitioned optimizer (zero1's shard) was re-partitioned before: each rank's is its own.
            bool partitioned = strategy?.PartitionsOptimizer == true;
            var opt = partitioned ? [] : Receive(group, root, manifest.Optimizer, isRoot ? optTensors : null);
            if (!isRoot && !partitioned)
                optimizer.LoadStateDict(opt, manifest.Optimizer.Scalars);
            if (manifest.Strategy != null)
            {
                var strat = Receive(group, root, manifest.Strategy, isRoot ? shared : null);
                if (!isRoot)
                {
                    var scalarsToLoad = new Dictionary<string, string>(manifest.Strategy.Scalars);
                    foreach (var (k, v) in stratScalars.Where(kv => strategy!.IsPerRankState(kv.Key)))
                        scalarsToLoad[k] = v;
                    strategy?.LoadStateDict(strat.Concat(perRank).ToDictionary(), scalarsToLoad);
                    Dispose(strat);
                }
            }
            if (!isRoot)
                Dispose(opt);
            return manifest.Scalars;
        }
        finally
        {
            Dispose(optTensors);
            Dispose(stratTensors);
        }
    }

    private static Part Describe(Dictionary<string, Tensor> tensors, Dictionary<string, string> scalars) =>
        new(
            scalars,
            tensors
                .OrderBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => new Entry(kv.Key, kv.Value.DType.ToString(), kv.Value.Shape.ToArray()))
                .ToList()
        );

    /// <summary>The root's tensors of <paramref name="part"/>, broadcast into <paramref name="own"/> (the root) or into
    /// tensors made from the manifest (the others).</summary>
    private static Dictionary<string, Tensor> Receive(
        IProcessGroup group,
        int root,
        Part part,
        Dictionary<string, Tensor>? own
    )
    {
        var tensors = own
            ?? part.Tensors.ToDictionary(
                e => e.Name,
                e => Tensor.Zeros(e.Shape, Enum.Parse<DType>(e.DType)).DetachFromScope()
            );
        foreach (var e in part.Tensors)
            group.Broadcast(tensors[e.Name], new BroadcastOptions { Root = root }).Wait();
        return tensors;
    }

    private static void Dispose(Dictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values)
            t.Dispose();
    }

    private static Manifest ExchangeManifest(IProcessGroup group, int root, Manifest? mine) =>
        BroadcastJson(group, root, mine)
        ?? throw new InvalidDataException("state broadcast: an empty manifest from the root");

    /// <summary>The root's <paramref name="mine"/> on every rank, as JSON over the group (the others pass null).</summary>
    internal static T? BroadcastJson<T>(IProcessGroup group, int root, T? mine)
        where T : class
    {
        byte[] bytes = mine != null ? JsonSerializer.SerializeToUtf8Bytes(mine) : [];
        var length = new long[] { bytes.Length };
        group.Broadcast<long>(length, new BroadcastOptions { Root = root });
        if (group.Rank != root)
            bytes = new byte[length[0]];
        group.Broadcast<byte>(bytes, new BroadcastOptions { Root = root });
        return JsonSerializer.Deserialize<T>(bytes);
    }
}
