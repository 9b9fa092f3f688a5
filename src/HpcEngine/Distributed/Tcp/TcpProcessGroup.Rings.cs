namespace HpcEngine.Distributed.Tcp;

/// <summary>The ring algorithms: allreduce as one pipeline of reduce-scatter and allgather, and the reduce built
/// from its first half.</summary>
public sealed partial class TcpProcessGroup
{
    /// <summary>Ring allreduce as one pipeline of 2(n−1) steps. Reduce-scatter: at step t a rank receives segment
    /// (rank−t−1) from the left, adds it into its own copy and forwards it to the right, so after n−1 steps it holds
    /// the full sum of segment (rank+1). Allgather: the finished segments travel on around the ring, overwriting. Each
    /// segment moves in chunks, and a chunk is forwarded as soon as it is reduced, so sending, receiving and reducing
    /// overlap. Every segment is summed in the same order on its way round, so all ranks end bitwise equal.</summary>
    private async Task RingAllReduce(Op op, Memory<byte> data, DType dtype, ReduceOp rop)
    {
        int n = Size,
            es = dtype.SizeOf(),
            count = data.Length / es;
        // The last reduced segment goes straight on: it is the allgather's first step.
        var sends = await ReduceAround(op, data, dtype, rop, "allreduce", forwardLast: true).ConfigureAwait(false);
        // The allgather overwrites segments sent during the reduce-scatter: those sends must be out first. Then every
        // chunk still to come is posted at once, so it lands straight in place.
        await Task.WhenAll(sends).ConfigureAwait(false);
        sends.Clear();
        var gather = Enumerable
            .Range(0, n - 1)
            .SelectMany(t =>
            {
                var (ss, sl) = Segment(count, es, Mod(Rank - t));
                return Chunks(ss, sl, es).Select(c => (Step: t, c.Start, c.Length));
            })
            .ToList();
        await PassAround(op, data, gather, sends, "allreduce").ConfigureAwait(false);
    }

    /// <summary>The reduce-scatter half of the rings: at step t a rank receives segment (rank−t−1) from the left, adds
    /// it into its own copy and forwards it to the right, so after n−1 steps it holds the full reduction of segment
    /// (rank+1). That last segment is forwarded too only when <paramref name="forwardLast"/>. Returns the sends in
    /// flight.</summary>
    private async Task<List<Task>> ReduceAround(
        Op op,
        Memory<byte> data,
        DType dtype,
        ReduceOp rop,
        string name,
        bool forwardLast
    )
    {
        int n = Size,
            es = dtype.SizeOf(),
            count = data.Length / es;
        int left = Mod(Rank - 1),
            right = Mod(Rank + 1);
        var sends = new List<Task>();
        var (s0, l0) = Segment(count, es, Rank);
        foreach (var (cs, cl) in Chunks(s0, l0, es))
            sends.Add(Link(right).SendAsync(op.Tag, data.Slice(cs, cl), op.Token));
        for (int t = 0; t < n - 1; t++)
        {
            var (ss, sl) = Segment(count, es, Mod(Rank - t - 1));
            foreach (var (cs, cl) in Chunks(ss, sl, es))
            {
                using (var m = await Receive(op, left).ConfigureAwait(false))
                {
                    CheckLength(op, m, cl, left, name);
                    WireReduce.Apply(rop, dtype, data.Span.Slice(cs, cl), m.Span);
                }
                if (forwardLast || t < n - 2)
                    sends.Add(Link(right).SendAsync(op.Tag, data.Slice(cs, cl), op.Token));
            }
        }
        return sends;
    }

    /// <summary>The allgather pattern of the rings: every chunk of <paramref name="gather"/> (in arrival order) comes
    /// from the left straight into place and, unless it has made its last step, goes on to the right.</summary>
    private async Task PassAround(
        Op op,
        Memory<byte> data,
        List<(int Step, int Start, int Length)> gather,
        List<Task> sends,
        string name
    )
    {
        int left = Mod(Rank - 1),
            right = Mod(Rank + 1);
        var posted = PostReceives(op, left, data, gather.Select(g => (g.Start, g.Length)));
        for (int i = 0; i < gather.Count; i++)
        {
            var (step, cs, cl) = gather[i];
            using (var m = await Await(op, left, posted[i]).ConfigureAwait(false))
            {
                CheckLength(op, m, cl, left, name);
                m.CopyTo(data.Span.Slice(cs, cl));
            }
            if (step < Size - 2)
                sends.Add(Link(right).SendAsync(op.Tag, data.Slice(cs, cl), op.Token));
        }
        await Task.WhenAll(sends).ConfigureAwait(false);
    }

    /// <summary>Reduce for large messages: the reduce-scatter half of the ring allreduce (after n−1 steps this rank
    /// holds the full reduction of segment rank+1), then each rank sends that segment to the root, which writes it in
    /// place.</summary>
    private async Task RingReduce(Op op, Memory<byte> data, DType dtype, ReduceOp rop, int root)
    {
        int n = Size,
            es = dtype.SizeOf(),
            count = data.Length / es;
        var sends = await ReduceAround(op, data, dtype, rop, "reduce", forwardLast: false).ConfigureAwait(false);
        await Task.WhenAll(sends).ConfigureAwait(false);
        if (Rank != root)
        {
            var (fs, fl) = Segment(count, es, Mod(Rank + 1));
            foreach (var (cs, cl) in Chunks(fs, fl, es))
                await Link(root).SendAsync(op.Tag, data.Slice(cs, cl), op.Token).ConfigureAwait(false);
            return;
        }
        // The root consumed every ring message from its left neighbour above, so what arrives now (FIFO per link and
        // tag) is the gathered segments.
        for (int r = 0; r < n; r++)
        {
            if (r == root)
                continue;
            var (fs, fl) = Segment(count, es, Mod(r + 1));
            foreach (var (cs, cl) in Chunks(fs, fl, es))
            {
                using var m = await Receive(op, r, data.Slice(cs, cl)).ConfigureAwait(false);
                CheckLength(op, m, cl, r, "reduce");
                m.CopyTo(data.Span.Slice(cs, cl));
            }
        }
    }
}
