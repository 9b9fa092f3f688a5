using System.Diagnostics;
using HpcEngine.Autograd;
using HpcEngine.Distributed;

namespace HpcEngine.Parallel;

/// <summary>The parameter server's side of elastic recovery (co-located servers). Training is asynchronous between
/// commit points; every <c>commitSteps</c> steps and at each epoch's end (<see cref="Commit"/>) the workers meet at
/// one:
/// <list type="number">
/// <item>a rendezvous at every shard's server: every worker has pushed the same number of gradients, so each shard is
/// whole (nothing pending); the shard's state (weights and optimizer) is taken there and every worker pulls it, so
/// every replica is equal;</item>
/// <item>each rank sends its shard's state to the next rank and keeps the previous rank's (the buddy copy);</item>
/// <item>a second rendezvous: having passed it, a rank knows every rank holds its own state and its buddy copy of
/// this point.</item>
/// </list>
/// A rank's own server counts its own arrival in process, so nobody passes a rendezvous while any rank is short of
/// it. After a loss the survivors go back to the most advanced member's commit point — a rank that fell out between
/// the two rendezvous holds that point's state already — and re-partition the shards over the new group, a lost
/// rank's shard from its buddy copy (<see cref="ShardRepartition"/>, as zero1's optimizer shards). What the workers
/// pushed after the commit point is redone, from the same data position.</summary>
public sealed partial class ParameterServerStrategy
{
    private const long CommitRequest = -2,
        CommitAck = -3;
    private const int BuddyTag = 0x5505;

    private readonly int _commitEvery;
    private int _stepsSinceCommit;
    private long _commits;
    private bool _stepCommitted = true;

    // The previous rank's shard state at the last commit point, and at the one in progress.
    private Dictionary<string, Tensor>? _buddyCommitted,
        _buddyPending;

    /// <inheritdoc/>
    public bool StepCommitted => _commitEvery == 0 || _stepCommitted;

    /// <inheritdoc/>
    public bool CommitsEveryStep => _commitEvery <= 1;

    /// <summary>Elastic: the shards (weights and optimizer state) are partitioned over the ranks and re-partitioned
    /// on a change of membership.</summary>
    public bool PartitionsOptimizer => _commitEvery > 0;

    /// <summary>Steps between commit points (0: not elastic).</summary>
    public int CommitSteps => _commitEvery;

    /// <inheritdoc/>
    public void Commit()
    {
        if (_commitEvery > 0 && _stepsSinceCommit > 0)
            CommitPoint();
    }

    private void AfterElasticStep()
    {
        _stepsSinceCommit++;
        _stepCommitted = false;
        if (_stepsSinceCommit >= _commitEvery)
            CommitPoint();
    }

    private void CommitPoint()
    {
        EnsureServing();
        var sw = Stopwatch.StartNew();
        long n = _commits++;
        Rendezvous(2 * n, withState: true);
        ExchangeCopies();
        Rendezvous(2 * n + 1, withState: false);
        _server!.Promote();
        DisposeCopy(_buddyCommitted);
        (_buddyCommitted, _buddyPending) = (_buddyPending, null);
        _stepsSinceCommit = 0;
        _stepCommitted = true;
        CommunicationSeconds += sw.Elapsed.TotalSeconds;
    }

    /// <summary>One rendezvous at every server (this rank's own in process, after its requests are out, so that no
    /// server waits on it); with <paramref name="withState"/> every shard comes back.</summary>
    private void Rendezvous(long key, bool withState)
    {
        using var noGrad = GradMode.NoGrad();
        var sends = new List<(Work, Tensor)>();
        for (int s = 0; s < _shards; s++)
            if (s != _myShard)
            {
                var header = Tensor
                    .FromArray(new long[] { withState ? CommitRequest : CommitAck, key, 0 })
                    .DetachFromScope();
                sends.Add((_group.Send(header, Owner(s), TagRequest), header));
                BytesCommunicated += 8 * HeaderLongs;
            }
        var (myStart, myLen) = Shard(_myShard);
        _versionRead[_myShard] = _server!.Arrive(
            _group.Rank,
            key,
            withState,
            withState ? _flat.AsSpan(myStart, myLen) : Span<float>.Empty
        );
        for (int s = 0; s < _shards; s++)
        {
            if (s == _myShard)
                continue;
            using var header = Tensor.Zeros([2], DType.Int64);
            _group.Recv(header, Owner(s), TagReply).Wait();
            _versionRead[s] = header.ToArray<long>()[0];
            BytesCommunicated += 16;
            if (!withState)
                continue;
            var (start, len) = Shard(s);
            using var data = Tensor.Zeros([len]);
            _group.Recv(data, Owner(s), TagReplyData).Wait();
            data.AsReadOnlySpan<float>().CopyTo(_flat.AsSpan(start, len));
            BytesCommunicated += 4L * len;
        }
        foreach (var (w, t) in sends)
        {
            w.Wait();
            t.Dispose();
        }
        ThrowIfServerFailed();
        if (withState)
            CopyIntoModel();
    }

    /// <summary>A server thread's side of <see cref="Rendezvous"/> for worker <paramref name="w"/>.</summary>
    private void ServeRendezvous(int w, bool withState, long key, float[] reply)
    {
        long version = _server!.Arrive(w, key, withState, withState ? reply.AsSpan() : Span<float>.Empty);
        using var header = Tensor.FromArray(new long[] { version, 0 });
        using var data = withState ? Tensor.FromArray(reply) : null;
        var a = _group.Send(header, w, TagReply);
        var b = data != null ? _group.Send(data, w, TagReplyData) : null;
        a.Wait();
        b?.Wait();
    }

    /// <summary>Sends this shard's state at the commit point in progress to the next rank and keeps the previous
    /// rank's.</summary>
    private void ExchangeCopies()
    {
        var own = _server!.Pending?.Tensors ?? throw new InvalidOperationException("internal: no state to copy");
        var (_, len) = Shard(_myShard);
        var names = own.Where(kv => kv.Value.NumEl == len).Select(kv => kv.Key).Order(StringComparer.Ordinal).ToArray();
        using var noGrad = GradMode.NoGrad();
        using var send = Tensor.Zeros([names.Length * _shardSize]).DetachFromScope();
        using var recv = Tensor.Zeros([names.Length * _shardSize]).DetachFromScope();
        for (int i = 0; i < names.Length; i++)
            using (var dst = send.Narrow(0, i * _shardSize, len))
            using (var src = own[names[i]].Reshape([len]))
                Ops.CopyInto(dst, src);
        int next = (_group.Rank + 1) % _group.Size,
            prev = (_group.Rank - 1 + _group.Size) % _group.Size;
        var sent = _group.Send(send, next, BuddyTag);
        var received = _group.Recv(recv, prev, BuddyTag);
        sent.Wait();
        received.Wait();
        BytesCommunicated += (long)names.Length * _shardSize * 4;
        DisposeCopy(_buddyPending);
        _buddyPending = names
            .Select((name, i) => (name, i))
            .ToDictionary(
                x => x.name,
                x =>
                {
                    using var part = recv.Narrow(0, x.i * _shardSize, _shardSize);
                    return part.Clone().DetachFromScope();
                }
            );
    }

    /// <summary>The first commit point of a generation: the shard as it stands, and the previous rank's as
    /// <paramref name="full"/> (a re-partitioned state) has it, or at the start of the run its slice of the replica
    /// (a fresh optimizer's per-element state is zero).</summary>
    private void BeginCommits(Dictionary<string, Tensor>? full = null)
    {
        _server!.CommitNow();
        DisposeCopy(_buddyCommitted);
        DisposeCopy(_buddyPending);
        _buddyPending = null;
        int prev = (_myShard - 1 + _shards) % _shards;
        var (start, len) = Shard(prev);
        var (_, myLen) = Shard(_myShard);
        using var noGrad = GradMode.NoGrad();
        _buddyCommitted = new Dictionary<string, Tensor>();
        foreach (var (name, t) in _server.Committed!.Value.Tensors.Where(kv => kv.Value.NumEl == myLen))
        {
            var copy = Tensor.Zeros([_shardSize]).DetachFromScope();
            if (full != null || name == ShardServer.WeightsEntry)
            {
                using var src =
                    full != null
                        ? full[name].Narrow(0, start, len)
                        : Tensor.FromArray(_flat.AsSpan(start, len).ToArray());
                using var dst = copy.Narrow(0, 0, len);
                Ops.CopyInto(dst, src);
            }
            _buddyCommitted[name] = copy;
        }
        _stepsSinceCommit = 0;
        _stepCommitted = true;
    }

    /// <inheritdoc/>
    public ShardedState? ExportShards(bool advance)
    {
        if (_commitEvery == 0)
            throw new InvalidOperationException(
                "internal: a parameter server without commit points cannot re-partition"
            );
        var own = advance ? _server!.Pending : _server!.Committed;
        var buddy = advance ? _buddyPending : _buddyCommitted;
        if (own == null || buddy == null)
            throw new CollectiveException(
                "elastic: this parameter server holds no state for the commit point the others finished; resume from "
                    + "the last checkpoint"
            );
        var (_, len) = Shard(_myShard);
        using var noGrad = GradMode.NoGrad();
        return new ShardedState
        {
            OldRank = _group.Rank,
            OldWorld = _group.Size,
            ShardSize = _shardSize,
            Own = own.Value.Tensors.ToDictionary(kv => kv.Key, kv => Padded(kv.Value, len)),
            Scalars = new Dictionary<string, string>(own.Value.Scalars),
            Buddy = buddy.ToDictionary(kv => kv.Key, kv => kv.Value.Clone().DetachFromScope()),
        };
    }

    /// <summary>A shard entry padded to the shard size (the last shard may be shorter): partitioned entries must all
    /// be <see cref="ShardedState.ShardSize"/> long.</summary>
    private Tensor Padded(Tensor t, int len)
    {
        if (t.NumEl != len)
            return t.Clone().DetachFromScope();
        var p = Tensor.Zeros([_shardSize]).DetachFromScope();
        using var dst = p.Narrow(0, 0, len);
        using var src = t.Reshape([len]);
        Ops.CopyInto(dst, src);
        return p;
    }

    /// <inheritdoc/>
    public void ImportShards(IProcessGroup group, int root, ShardedState? mine)
    {
        ArgumentNullException.ThrowIfNull(group);
        var (full, replicated, scalars) = ShardRepartition.Assemble(group, root, mine);
        var optimizer = new Dictionary<string, Tensor>();
        try
        {
            using var noGrad = GradMode.NoGrad();
            full[ShardServer.WeightsEntry].AsReadOnlySpan<float>()[.._total].CopyTo(_flat);
            CopyIntoModel();
            var (start, len) = Shard(_myShard);
            foreach (var (name, whole) in full.Where(kv => kv.Key != ShardServer.WeightsEntry))
                using (var part = whole.Narrow(0, start, len))
                    optimizer[name] = part.Clone().DetachFromScope();
            foreach (var (name, t) in replicated)
                optimizer[name] = t.Clone().DetachFromScope();
            _server!.Load(_flat.AsSpan(start, len), optimizer, scalars);
            BeginCommits(full);
        }
        finally
        {
            foreach (var t in full.Values.Concat(replicated.Values).Concat(optimizer.Values))
                t.Dispose();
        }
    }

    /// <summary>Elastic, after a change of membership: the old group is gone, so its serving threads end on their
    /// failed receives; nothing is gathered.</summary>
    private void Abandon()
    {
        _finished = true;
        bool ended = _serving.All(t => t.Join(TimeSpan.FromSeconds(5)));
        DisposeCommits();
        if (ended)
            _server?.Dispose(); // a thread still serving (the group was not torn down) keeps its shard
        _lrHolder?.Dispose();
        _lrDummy?.Dispose();
    }

    private void DisposeCommits()
    {
        DisposeCopy(_buddyCommitted);
        DisposeCopy(_buddyPending);
        _buddyCommitted = _buddyPending = null;
    }

    private static void DisposeCopy(Dictionary<string, Tensor>? copy)
    {
        if (copy != null)
            foreach (var t in copy.Values)
                t.Dispose();
    }
}
