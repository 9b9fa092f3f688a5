using System.Buffers;

namespace HpcEngine.Distributed.Tcp;

/// <summary>Hierarchical broadcast, allgather and reduce-scatter over the same sub-groups as the hierarchical allreduce
/// (H hosts of L ranks: <c>Local</c> is this rank's host, local rank i; <c>Cross</c> the ranks with local index i on
/// every host, cross rank h). Each byte crosses the network once per host that needs it, the rest goes through shared
/// memory. Each op goes through in pieces, so that its network and shared-memory phases overlap (as the allreduce's).</summary>
public sealed partial class TcpProcessGroup
{
    /// <summary>Whether a broadcast, allgather or reduce-scatter of <paramref name="bytes"/> goes hierarchical; when it
    /// does, the sub-groups exist on return. Called on the caller's thread, in call order (as the allreduce's
    /// choice).</summary>
    private bool GoesHierarchical(long bytes)
    {
        if (!IsHierarchical(bytes))
            return false;
        SubGroups();
        return true;
    }

    /// <summary>A hierarchical op's place in line: the op before it, and the signal it gives when it is done.</summary>
    private sealed class LaneTicket(Task previous)
    {
        public Task Previous { get; } = previous;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private Task _laneTail = Task.CompletedTask;

    /// <summary>Takes the next place in line for a hierarchical op (on the caller's thread, in op order). Hierarchical
    /// ops run one after another: each issues its sub-group ops from continuations (after a phase of an earlier piece
    /// finished), and two in flight at once would number their sub-ops in whatever order their phases finished — which
    /// differs between ranks, so the sub-groups' sequence numbers would disagree (one rank's piece of tensor 1 meeting
    /// another's piece of tensor 3). In line, every rank issues every sub-op in the same order.</summary>
    private LaneTicket EnterLane()
    {
        lock (_hierarchyLock)
        {
            var ticket = new LaneTicket(_laneTail);
            _laneTail = ticket.Done.Task;
            return ticket;
        }
    }

    /// <summary>Runs <paramref name="body"/> once the ops before it in line are done (at once without a
    /// ticket).</summary>
    private static async Task InLane(LaneTicket? lane, CancellationToken token, Func<Task> body)
    {
        if (lane == null)
        {
            await body().ConfigureAwait(false);
            return;
        }
        try
        {
            // Never faults (a failed op signals done as well); the op's own deadline bounds the wait, in case an
            // earlier op never started its body (a desync check that failed first).
            await lane.Previous.WaitAsync(token).ConfigureAwait(false);
            await body().ConfigureAwait(false);
        }
        finally
        {
            lane.Done.TrySetResult();
        }
    }

    /// <summary>Whether a broadcast, allgather (of <paramref name="bytes"/> gathered) or reduce-scatter (of
    /// <paramref name="bytes"/> scattered) goes hierarchical: the group spans hosts of equal rank counts, the size is
    /// above <see cref="TcpOptions.SmallMessageBytes"/> and <see cref="TcpOptions.Hierarchical"/> is on.</summary>
    public bool IsHierarchical(long bytes) =>
        Size > 1
        && _mesh.Options is { Hierarchical: true, HierarchicalAll: true }
        && bytes > _mesh.Options.SmallMessageBytes
        && HostGroups(out _) != null;

    /// <summary>(offset, length) pieces of a block of <paramref name="length"/> bytes, about 4 ring chunks per local
    /// rank each (as the hierarchical allreduce's), whole elements of <paramref name="es"/> bytes: piece p+1 crosses
    /// the network while piece p goes through shared memory.</summary>
    private List<(int Offset, int Length)> Pieces(int length, int es, int localRanks)
    {
        int piece = Math.Max(es, (int)Math.Min(int.MaxValue / 2, 4L * _mesh.Options.ChunkBytes * localRanks) / es * es);
        var pieces = new List<(int, int)>();
        for (int at = 0; at < length; at += piece)
            pieces.Add((at, Math.Min(piece, length - at)));
        if (pieces.Count == 0)
            pieces.Add((0, 0));
        return pieces;
    }

    /// <summary>Piece by piece: the root's data to the ranks with its local index on every host (across the network),
    /// then from each of those to its host (shared memory).</summary>
    private async Task HierarchicalBroadcast(Memory<byte> data, int root)
    {
        var hosts = _hosts!;
        var h = SubGroups();
        int rootHost = Array.FindIndex(hosts, g => g.Contains(root)),
            rootLocal = Array.IndexOf(hosts[rootHost], root);
        var inHost = new List<Task>();
        foreach (var (at, length) in Pieces(data.Length, 1, h.Local.Size))
        {
            var piece = data.Slice(at, length);
            if (h.Local.Rank == rootLocal)
                await h
                    .Cross.Run("broadcast/across hosts", length, null, o => h.Cross.ChainBroadcast(o, piece, rootHost))
                    .Task.ConfigureAwait(false);
            inHost.Add(
                h.Local.Run("broadcast/host", length, null, o => h.Local.ChainBroadcast(o, piece, rootLocal)).Task
            );
        }
        await Task.WhenAll(inHost).ConfigureAwait(false);
    }

    /// <summary>Piece by piece: (1) the ranks with local index i allgather their pieces across hosts (H each); (2) each
    /// host allgathers those in shared memory (L × H, ordered by local index, then host); (3) the pieces are put in
    /// rank order.</summary>
    private async Task HierarchicalAllGather(Memory<byte> output, Memory<byte> input)
    {
        var hosts = _hosts!;
        var h = SubGroups();
        int nh = hosts.Length,
            nl = hosts[0].Length,
            block = input.Length;
        var across = ArrayPool<byte>.Shared.Rent(nh * block);
        var gathered = ArrayPool<byte>.Shared.Rent(nl * nh * block);
        try
        {
            var pieces = Pieces(block, 1, nl);
            // Piece k's buffers: across[nh·offset, nh·length), gathered[nl·nh·offset, nl·nh·length).
            var crossed = pieces
                .Select(p =>
                {
                    var a = across.AsMemory(nh * p.Offset, nh * p.Length);
                    var mine = input.Slice(p.Offset, p.Length);
                    return h
                        .Cross.Run("allgather/across hosts", a.Length, null, o => h.Cross.RingAllGather(o, a, mine))
                        .Task;
                })
                .ToList();
            var local = new List<Task>();
            for (int k = 0; k < pieces.Count; k++)
            {
                await crossed[k].ConfigureAwait(false);
                var (at, length) = pieces[k];
                var a = across.AsMemory(nh * at, nh * length);
                var g = gathered.AsMemory(nl * nh * at, nl * nh * length);
                local.Add(
                    PlaceAfter(
                        h.Local.Run("allgather/host", g.Length, null, o => h.Local.RingAllGather(o, g, a)).Task,
                        () =>
                        {
                            for (int i = 0; i < nl; i++)
                            for (int c = 0; c < nh; c++)
                                g.Span.Slice((i * nh + c) * length, length)
                                    .CopyTo(output.Span.Slice(hosts[c][i] * block + at, length));
                        }
                    )
                );
            }
            await Task.WhenAll(local).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(across);
            ArrayPool<byte>.Shared.Return(gathered);
        }
    }

    private static async Task PlaceAfter(Task op, Action place)
    {
        await op.ConfigureAwait(false);
        place();
    }

    /// <summary>Piece by piece: (1) the input's pieces ordered by local index, then host; (2) a reduce-scatter inside
    /// the host leaves local rank i the host's sum of the H pieces of the ranks with local index i; (3) those ranks
    /// reduce-scatter it across hosts, each keeping its own piece. Avg divides once, by the whole group's size.</summary>
    private async Task HierarchicalReduceScatter(Memory<byte> output, Memory<byte> input, DType dtype, ReduceOp rop)
    {
        var hosts = _hosts!;
        var h = SubGroups();
        int nh = hosts.Length,
            nl = hosts[0].Length,
            block = output.Length;
        var sum = rop == ReduceOp.Avg ? ReduceOp.Sum : rop;
        var ordered = ArrayPool<byte>.Shared.Rent(input.Length);
        var hostSums = ArrayPool<byte>.Shared.Rent(nh * block);
        try
        {
            var pieces = Pieces(block, dtype.SizeOf(), nl);
            var reduced = pieces
                .Select(p =>
                {
                    var (at, length) = p;
                    var o = ordered.AsMemory(nl * nh * at, nl * nh * length);
                    for (int i = 0; i < nl; i++)
                    for (int c = 0; c < nh; c++)
                        input
                            .Span.Slice(hosts[c][i] * block + at, length)
                            .CopyTo(o.Span.Slice((i * nh + c) * length, length));
                    var q = hostSums.AsMemory(nh * at, nh * length);
                    return h
                        .Local.Run("reduce_scatter/host", o.Length, null, op =>
                            h.Local.RingReduceScatter(op, q, o, dtype, sum)
                        )
                        .Task;
                })
                .ToList();
            var crossed = new List<Task>();
            for (int k = 0; k < pieces.Count; k++)
            {
                await reduced[k].ConfigureAwait(false);
                var (at, length) = pieces[k];
                var q = hostSums.AsMemory(nh * at, nh * length);
                var mine = output.Slice(at, length);
                crossed.Add(
                    h.Cross.Run("reduce_scatter/across hosts", q.Length, null, op =>
                        h.Cross.RingReduceScatter(op, mine, q, dtype, sum)
                    ).Task
                );
            }
            await Task.WhenAll(crossed).ConfigureAwait(false);
            if (rop == ReduceOp.Avg)
                WireReduce.Average(dtype, output.Span, Size);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(ordered);
            ArrayPool<byte>.Shared.Return(hostSums);
        }
    }
}
