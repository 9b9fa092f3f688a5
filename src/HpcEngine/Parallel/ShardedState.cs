using HpcEngine.Distributed;

namespace HpcEngine.Parallel;

/// <summary>One rank's part of a partitioned optimizer state (zero1's), taken out for a change of membership: the
/// state of its own shard of the flattened parameters and the copy it holds of the previous rank's shard (its buddy
/// copy), both at the same step. Entries of <see cref="ShardSize"/> float32 elements are partitioned (a moment per
/// element); the others (Adam's step count) are the same on every rank.</summary>
public sealed class ShardedState : IDisposable
{
    /// <summary>This rank's rank in the group the state was partitioned over.</summary>
    public required int OldRank { get; init; }

    /// <summary>The size of that group.</summary>
    public required int OldWorld { get; init; }

    /// <summary>Elements per shard (the flattened parameters padded to OldWorld × ShardSize).</summary>
    public required int ShardSize { get; init; }

    /// <summary>This rank's shard of each state entry, by the optimizer's name for it.</summary>
    public required Dictionary<string, Tensor> Own { get; init; }

    /// <summary>The optimizer's scalars (step count, rate, hyper-parameters), the same on every rank.</summary>
    public required Dictionary<string, string> Scalars { get; init; }

    /// <summary>The previous rank's shard of each partitioned state entry; null when this rank holds no copy yet.</summary>
    public Dictionary<string, Tensor>? Buddy { get; init; }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in Own.Values.Concat(Buddy?.Values ?? Enumerable.Empty<Tensor>()))
            t.Dispose();
    }
}

/// <summary>Re-assembles a partitioned state over a new group: each survivor contributes its own shard, the holder of a
/// lost rank's buddy copy contributes that, and one sum-allreduce per state entry gives every member the whole state
/// (each element has exactly one contributor, so the sum is exact). Losing a rank and the rank that holds its copy
/// (neighbours) loses that shard: a typed error then says to resume from the last checkpoint.</summary>
internal static class ShardRepartition
{
    private sealed record Header(
        int OldWorld,
        int ShardSize,
        string[] Names,
        Dictionary<string, int[]> Replicated,
        Dictionary<string, string> Scalars
    );

    /// <summary>Whether a state entry is partitioned (one value per element of the shard) rather than the same on every
    /// rank.</summary>
    public static bool IsPartitioned(Tensor t, int shardSize) => t.Rank == 1 && t.NumEl == shardSize;

    /// <summary>The whole state: each partitioned entry flat over OldWorld × ShardSize elements, the replicated
    /// entries and the optimizer's scalars (from <paramref name="root"/>, a member that was in the old group).</summary>
    public static (
        Dictionary<string, Tensor> Full,
        Dictionary<string, Tensor> Replicated,
        Dictionary<string, string> Scalars
    ) Assemble(IProcessGroup group, int root, ShardedState? mine)
    {
        if (group.Rank == root && mine == null)
            throw new InvalidOperationException("internal: the root of a re-partition must have been a member before");
        var header = StateBroadcast.BroadcastJson(
            group,
            root,
            group.Rank == root
                ? new Header(
                    mine!.OldWorld,
                    mine.ShardSize,
                    mine.Own.Where(kv => IsPartitioned(kv.Value, mine.ShardSize))
                        .Select(kv => kv.Key)
                        .Order()
                        .ToArray(),
                    mine.Own.Where(kv => !IsPartitioned(kv.Value, mine.ShardSize))
                        .ToDictionary(kv => kv.Key, kv => kv.Value.ShapeArray),
                    mine.Scalars
                )
                : null
        ) ?? throw new InvalidDataException("re-partition: an empty header from the root");
        int w = header.OldWorld,
            s = header.ShardSize;
        if (mine != null && (mine.OldWorld != w || mine.ShardSize != s))
            throw new InvalidOperationException(
                $"re-partition: this rank's shards are of a group of {mine.OldWorld} × {mine.ShardSize}, the root's of {w} × {s}"
            );
        // Who survived, and who holds a buddy copy: marks[r] and marks[w + r].
        var marks = new long[2 * w];
        if (mine != null)
        {
            marks[mine.OldRank] = 1;
            if (mine.Buddy != null)
                marks[w + mine.OldRank] = 1;
        }
        group.AllReduce<long>(marks, new AllReduceOptions { Op = ReduceOp.Sum });
        if (header.Names.Length > 0)
            for (int shard = 0; shard < w; shard++)
            {
                int holder = (shard + 1) % w;
                if (marks[shard] == 0 && (marks[holder] == 0 || marks[w + holder] == 0))
                    throw new Distributed.Elastic.ElasticStateLostException(
                        $"elastic: the optimizer shard of rank {shard} of {w} is lost with it, and its copy with rank "
                            + $"{holder} (lost too, or holding no copy yet); resume from the last checkpoint"
                    );
            }
        var full = new Dictionary<string, Tensor>();
        foreach (var name in header.Names)
        {
            var t = Tensor.Zeros([w * s]).DetachFromScope();
            if (mine != null)
            {
                Place(t, mine.Own, name, mine.OldRank, s);
                int prev = (mine.OldRank - 1 + w) % w;
                if (marks[prev] == 0 && mine.Buddy != null)
                    Place(t, mine.Buddy, name, prev, s);
            }
            group.AllReduce(t, new AllReduceOptions { Op = ReduceOp.Sum }).Wait();
            full[name] = t;
        }
        var replicated = new Dictionary<string, Tensor>();
        foreach (var (name, shape) in header.Replicated.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var t =
                group.Rank == root ? mine!.Own[name].Clone().DetachFromScope() : Tensor.Zeros(shape).DetachFromScope();
            group.Broadcast(t, new BroadcastOptions { Root = root }).Wait();
            replicated[name] = t;
        }
        return (full, replicated, header.Scalars);
    }

    private static void Place(Tensor into, Dictionary<string, Tensor> from, string name, int shard, int size)
    {
        if (!from.TryGetValue(name, out var part))
            throw new InvalidOperationException($"re-partition: state entry '{name}' is missing from shard {shard}");
        using var dst = into.Narrow(0, shard * size, size);
        Ops.CopyInto(dst, part);
    }
}
