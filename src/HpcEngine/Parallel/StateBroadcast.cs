using System.Text.Json;
using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

/// <summary>Live recovery's state transfer: makes every rank's model (parameters and buffers), optimizer state and a
/// few named scalars equal to the root's, over the group, with no disk round trip. The optimizer's state may differ in
/// shape between ranks (one rank stepped, another not yet): the root sends a manifest first, so the others rebuild
/// theirs from it.</summary>
public static class StateBroadcast
{
    private sealed record Manifest(
        Dictionary<string, string> Scalars,
        Dictionary<string, string> OptimizerScalars,
        List<Entry> OptimizerTensors
    );

    private sealed record Entry(string Name, string DType, int[] Shape);

    /// <summary>Every rank calls it with its own model and optimizer; returns the root's <paramref name="scalars"/>.
    /// Models must have the same structure (the same state-dict names and shapes); CPU tensors.</summary>
    public static Dictionary<string, string> Run(
        IProcessGroup group,
        int root,
        Module model,
        Optimizer optimizer,
        IReadOnlyDictionary<string, string> scalars
    )
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(scalars);
        using (GradMode.NoGrad())
            foreach (var (_, t) in model.StateDict())
                group.Broadcast(t, new BroadcastOptions { Root = root }).Wait();
        var (mine, optScalars) = optimizer.StateDict();
        try
        {
            var manifest = ExchangeManifest(group, root, scalars, mine, optScalars);
            var tensors =
                group.Rank == root
                    ? mine
                    : manifest.OptimizerTensors.ToDictionary(
                        e => e.Name,
                        e => Tensor.Zeros(e.Shape, Enum.Parse<DType>(e.DType)).DetachFromScope()
                    );
            foreach (var e in manifest.OptimizerTensors)
                group.Broadcast(tensors[e.Name], new BroadcastOptions { Root = root }).Wait();
            if (group.Rank != root)
            {
                optimizer.LoadStateDict(tensors, manifest.OptimizerScalars);
                foreach (var t in tensors.Values)
                    t.Dispose();
            }
            return manifest.Scalars;
        }
        finally
        {
            foreach (var t in mine.Values)
                t.Dispose();
        }
    }

    private static Manifest ExchangeManifest(
        IProcessGroup group,
        int root,
        IReadOnlyDictionary<string, string> scalars,
        Dictionary<string, Tensor> tensors,
        Dictionary<string, string> optScalars
    )
    {
        byte[] bytes =
            group.Rank == root
                ? JsonSerializer.SerializeToUtf8Bytes(
                    new Manifest(
                        new Dictionary<string, string>(scalars),
                        optScalars,
                        tensors
                            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
                            .Select(kv => new Entry(kv.Key, kv.Value.DType.ToString(), kv.Value.Shape.ToArray()))
                            .ToList()
                    )
                )
                : [];
        var length = new long[] { bytes.Length };
        group.Broadcast<long>(length, new BroadcastOptions { Root = root });
        if (group.Rank != root)
            bytes = new byte[length[0]];
        group.Broadcast<byte>(bytes, new BroadcastOptions { Root = root });
        return JsonSerializer.Deserialize<Manifest>(bytes)
            ?? throw new InvalidDataException("state broadcast: an empty manifest from the root");
    }
}
