using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

/// <summary>Zero1's side of elastic recovery: buddy copies of the shard state and its re-partition over a new
/// group.</summary>
public sealed partial class Zero1Strategy
{
    private const int BuddyTag = 0x2E01;

    // Own shard state as it was before the step in progress (the last commit point); the previous rank's shard state
    // at the last commit point, and the one received in the step in progress.
    private (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars)? _ownBefore;
    private Dictionary<string, Tensor>? _buddyCommitted,
        _buddyPending;
    private bool _applied; // the step in progress has updated this rank's shard

    /// <inheritdoc/>
    public bool PartitionsOptimizer => true;

    /// <summary>All of zero1's strategy state (its shard of the optimizer state) is this rank's own.</summary>
    public bool IsPerRankState(string key) => true;

    private void SnapshotBeforeStep()
    {
        if (_ownBefore is { } old)
            Dispose(old.Tensors);
        _ownBefore = _optimizer.StateDict();
    }

    /// <summary>Sends this rank's updated shard state to the next rank and receives the previous rank's.</summary>
    private void ExchangeWithNeighbours()
    {
        var (state, _) = _optimizer.StateDict();
        try
        {
            var names = state
                .Where(kv => ShardRepartition.IsPartitioned(kv.Value, _shard))
                .Select(kv => kv.Key)
                .Order()
                .ToArray();
            if (names.Length == 0)
                return;
            using var send = Tensor.Zeros([names.Length * _shard]).DetachFromScope();
            using var recv = Tensor.Zeros([names.Length * _shard]).DetachFromScope();
            using (GradMode.NoGrad())
                for (int i = 0; i < names.Length; i++)
                    using (var dst = send.Narrow(0, i * _shard, _shard))
                        Ops.CopyInto(dst, state[names[i]]);
            int next = (_group.Rank + 1) % _group.Size,
                prev = (_group.Rank - 1 + _group.Size) % _group.Size;
            var sent = _group.Send(send, next, BuddyTag);
            var received = _group.Recv(recv, prev, BuddyTag);
            sent.Wait();
            received.Wait();
            BytesCommunicated += (long)names.Length * _shard * 4;
            if (_buddyPending != null)
                Dispose(_buddyPending);
            _buddyPending = names
                .Select((n, i) => (n, i))
                .ToDictionary(
                    x => x.n,
                    x =>
                    {
                        using var part = recv.Narrow(0, x.i * _shard, _shard);
                        return part.Clone().DetachFromScope();
                    }
                );
        }
        finally
        {
            Dispose(state);
        }
    }

    private void Committed()
    {
        _applied = false;
        if (!_buddyCopies)
            return;
        if (_buddyCommitted != null)
            Dispose(_buddyCommitted);
        _buddyCommitted = _buddyPending;
        _buddyPending = null;
    }

    /// <inheritdoc/>
    public ShardedState? ExportShards(bool advance)
    {
        if (!_buddyCopies)
            throw new InvalidOperationException("internal: zero1 without buddy copies cannot be re-partitioned");
        (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars) own;
        Dictionary<string, Tensor>? buddy;
        if (advance)
        {
            // The others finished the step this rank failed in: it did update its shard and copy its neighbour's.
            if (!_applied || _buddyPending == null)
                throw new CollectiveException(
                    "elastic: zero1 on this rank holds no state for the step the others finished; resume from the last checkpoint"
                );
            own = _optimizer.StateDict();
            buddy = _buddyPending;
        }
        else
        {
            own =
                _applied && _ownBefore is { } before ? (Clone(before.Tensors), before.Scalars) : _optimizer.StateDict();
            buddy = _buddyCommitted;
        }
        return new ShardedState
        {
            OldRank = _group.Rank,
            OldWorld = _group.Size,
            ShardSize = _shard,
            Own = own.Tensors,
            Scalars = own.Scalars,
            Buddy = buddy != null ? Clone(buddy) : null,
        };
    }

    /// <inheritdoc/>
    public void ImportShards(IProcessGroup group, int root, ShardedState? mine)
    {
        ArgumentNullException.ThrowIfNull(group);
        var (full, replicated, scalars) = ShardRepartition.Assemble(group, root, mine);
        var slices = replicated;
        try
        {
            using var noGrad = GradMode.NoGrad();
            foreach (var (name, whole) in full)
            {
                var part = Tensor.Zeros([_shard]).DetachFromScope();
                int from = _group.Rank * _shard,
                    count = Math.Max(0, Math.Min(_shard, whole.NumEl - from));
                if (count > 0)
                    using (var src = whole.Narrow(0, from, count))
                    using (var dst = part.Narrow(0, 0, count))
                        Ops.CopyInto(dst, src);
                slices[name] = part;
            }
            LoadStateDict(slices, scalars);
        }
        finally
        {
            Dispose(full);
            Dispose(slices);
        }
    }

    /// <summary>For a group that fell to one rank (no strategy, a plain optimizer over every parameter): the whole
    /// state re-assembled from the exports and laid out per parameter (a parameter server's weights into the
    /// parameters themselves).</summary>
    public static void ImportWhole(
        IProcessGroup group,
        int root,
        ShardedState? mine,
        Optimizer optimizer,
        IReadOnlyList<Tensor> parameters
    )
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(parameters);
        var (full, replicated, scalars) = ShardRepartition.Assemble(group, root, mine);
        var state = new Dictionary<string, Tensor>();
        try
        {
            using var noGrad = GradMode.NoGrad();
            foreach (var (name, value) in replicated)
                for (int i = 0; i < parameters.Count; i++)
                    state[$"state.{i}.{name.Split('.', 3)[2]}"] = value.Clone().DetachFromScope();
            foreach (var (name, whole) in full)
            {
                if (name == ShardServer.WeightsEntry)
                {
                    // A parameter server's shards hold the weights too: they become the replica.
                    CopyIntoParameters(whole, parameters);
                    continue;
                }
                string entry = name.Split('.', 3)[2]; // "state.0.exp_avg" → "exp_avg"
                int at = 0;
                for (int i = 0; i < parameters.Count; i++)
                {
                    using var flat = whole.Narrow(0, at, parameters[i].NumEl);
                    using var shaped = flat.Reshape(parameters[i].ShapeArray);
                    state[$"state.{i}.{entry}"] = shaped.Clone().DetachFromScope();
                    at += parameters[i].NumEl;
                }
            }
            var perParameter = new Dictionary<string, string>(scalars)
            {
                ["param_count"] = parameters.Count.ToString(System.Globalization.CultureInfo.InvariantCulture),
            };
            optimizer.LoadStateDict(state, perParameter);
        }
        finally
        {
            Dispose(full);
            Dispose(replicated);
            Dispose(state);
        }
    }

    private static void CopyIntoParameters(Tensor flat, IReadOnlyList<Tensor> parameters)
    {
        int at = 0;
        foreach (var p in parameters)
        {
            using var part = flat.Narrow(0, at, p.NumEl);
            using var shaped = part.Reshape(p.ShapeArray);
            Ops.CopyInto(p, shaped);
            at += p.NumEl;
        }
    }

    private static Dictionary<string, Tensor> Clone(Dictionary<string, Tensor> tensors) =>
        tensors.ToDictionary(kv => kv.Key, kv => kv.Value.Clone().DetachFromScope());

    private static void Dispose(Dictionary<string, Tensor> tensors)
    {
        foreach (var t in tensors.Values)
            t.Dispose();
    }

    private void DisposeCopies()
    {
        if (_ownBefore is { } before)
            Dispose(before.Tensors);
        foreach (var copy in new[] { _buddyCommitted, _buddyPending })
            if (copy != null)
                Dispose(copy);
        _ownBefore = null;
        _buddyCommitted = _buddyPending = null;
    }
}
