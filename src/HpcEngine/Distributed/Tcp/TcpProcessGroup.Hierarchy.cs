namespace HpcEngine.Distributed.Tcp;

/// <summary>Hierarchical allreduce: the group seen as H hosts of L ranks each (from the host identities the ranks
/// published at rendezvous). A flat ring over such a group crosses the network at 2H of its 2n steps with every byte;
/// this crosses it once per host with 1/L of the bytes per rank, and leaves the rest to shared memory.</summary>
public sealed partial class TcpProcessGroup
{
    /// <summary>This rank's two sub-groups: its host's ranks, and the ranks with its local index on every
    /// host.</summary>
    private sealed record Hierarchy(TcpProcessGroup Local, TcpProcessGroup Cross);

    private readonly Lock _hierarchyLock = new();
    private int[][]? _hosts;
    private string? _notHierarchical;
    private Hierarchy? _hierarchy;

    /// <summary>The group's ranks by host (in order of their first rank), or null with the reason when the group is
    /// not H ≥ 2 hosts of the same L ≥ 2 ranks. Computed from the topology alone; creates nothing.</summary>
    private int[][]? HostGroups(out string? why)
    {
        lock (_hierarchyLock)
        {
            if (_hosts == null && _notHierarchical == null)
            {
                var byHost = Enumerable
                    .Range(0, Size)
                    .GroupBy(r => _mesh.HostOf(_members[r]))
                    .Select(g => g.ToArray())
                    .ToArray();
                if (byHost.Length < 2 || byHost[0].Length < 2)
                    _notHierarchical =
                        $"the group has {byHost.Length} host(s) of {byHost[0].Length} rank(s): nothing to gain over a "
                        + $"flat algorithm";
                else if (byHost.Any(g => g.Length != byHost[0].Length))
                    _notHierarchical =
                        $"the hosts hold different numbers of ranks ({string.Join(", ", byHost.Select(g => g.Length))}): hierarchical allreduce needs the same count on every host";
                else
                    _hosts = byHost;
            }
            why = _notHierarchical;
            return _hosts;
        }
    }

    /// <summary>This rank's sub-groups, created by the first hierarchical allreduce. That is chosen on the caller's
    /// thread in call order, and every rank reaches it at the same point of its op sequence, so all create the same
    /// groups in the same order and their group ids agree.</summary>
    private Hierarchy SubGroups()
    {
        lock (_hierarchyLock)
        {
            if (_hierarchy != null)
                return _hierarchy;
            var byHost = _hosts
                ?? throw new InvalidOperationException("internal: sub-groups of a group that is not hierarchical");
            // Ids are drawn by every rank for every group, member or not, so that they agree.
            TcpProcessGroup? local = null,
                cross = null;
            foreach (var g in byHost)
                local = (TcpProcessGroup?)NewGroup(g) ?? local;
            for (int i = 0; i < byHost[0].Length; i++)
                cross = (TcpProcessGroup?)NewGroup(byHost.Select(g => g[i]).ToArray()) ?? cross;
            return _hierarchy = new Hierarchy(local!, cross!);
        }
    }

    /// <summary>(1) A ring reduce-scatter inside the host leaves local rank i holding its host's sum of share i+1;
    /// (2) the ranks holding that share on every host allreduce it across the network; (3) a ring allgather inside the
    /// host spreads the shares. The message goes through in pieces (about 4 ring chunks per local rank each), so the
    /// phases overlap: piece p+1 is reduced in shared memory while piece p crosses the network. Each phase of each
    /// piece is an op of its sub-group (its own sequence, timeout and flight-recorder entry), issued in piece order on
    /// every rank, so sequence numbers agree. Every share is reduced in one order: all ranks end bitwise equal.</summary>
    private async Task HierarchicalAllReduce(Op op, Memory<byte> data, DType dtype, ReduceOp rop)
    {
        var h = SubGroups();
        var sum = rop == ReduceOp.Avg ? ReduceOp.Sum : rop; // the caller divides once, by the whole group's size
        var local = h.Local;
        int es = dtype.SizeOf();
        int pieceBytes = Math.Max(
            es,
            (int)Math.Min(int.MaxValue / 2, 4L * _mesh.Options.ChunkBytes * local.Size) / es * es
        );
        var pieces = new List<Memory<byte>>();
        for (int at = 0; at < data.Length || at == 0; at += pieceBytes)
        {
            pieces.Add(data.Slice(at, Math.Min(pieceBytes, data.Length - at)));
            if (data.Length == 0)
                break;
        }
        // The sub-ops take the default timeout: the outer op's own deadline aborts the mesh, and with it them, sooner.
        var reduced = pieces
            .Select(piece =>
                local
                    .Run("allreduce/host reduce-scatter", piece.Length, null, async o =>
                    {
                        var sends = await local
                            .ReduceAround(o, piece, dtype, sum, "allreduce", forwardLast: false)
                            .ConfigureAwait(false);
                        await Task.WhenAll(sends).ConfigureAwait(false);
                    })
                    .Task
            )
            .ToList();
        var crossed = new List<Task>();
        foreach (var (piece, k) in pieces.Select((piece, k) => (piece, k)))
        {
            await reduced[k].ConfigureAwait(false);
            var (start, length) = local.Segment(piece.Length / es, es, local.Mod(local.Rank + 1));
            var share = piece.Slice(start, length);
            var across = h.Cross.Algorithm(AllReduceAlgorithm.Auto, length);
            crossed.Add(
                h.Cross.Run("allreduce/across hosts", length, null, o =>
                    h.Cross.AllReduceBytes(o, share, dtype, sum, across)
                ).Task
            );
        }
        var gathered = new List<Task>();
        foreach (var (piece, k) in pieces.Select((piece, k) => (piece, k)))
        {
            await crossed[k].ConfigureAwait(false);
            gathered.Add(
                local
                    .Run("allreduce/host allgather", piece.Length, null, o => local.AllGatherShares(o, piece, dtype))
                    .Task
            );
        }
        await Task.WhenAll(gathered).ConfigureAwait(false);
    }

    /// <summary>The allgather half of the ring allreduce on its own: this rank holds segment rank+1 and sends it on;
    /// every other segment arrives from the left straight into place.</summary>
    private async Task AllGatherShares(Op op, Memory<byte> data, DType dtype)
    {
        int es = dtype.SizeOf(),
            count = data.Length / es;
        var sends = new List<Task>();
        var (s0, l0) = Segment(count, es, Mod(Rank + 1));
        foreach (var (cs, cl) in Chunks(s0, l0, es))
            sends.Add(Link(Mod(Rank + 1)).SendAsync(op.Tag, data.Slice(cs, cl), op.Token));
        var gather = Enumerable
            .Range(0, Size - 1)
            .SelectMany(t =>
            {
                var (ss, sl) = Segment(count, es, Mod(Rank - t));
                return Chunks(ss, sl, es).Select(c => (Step: t, c.Start, c.Length));
            })
            .ToList();
        await PassAround(op, data, gather, sends, "allreduce").ConfigureAwait(false);
    }
}
