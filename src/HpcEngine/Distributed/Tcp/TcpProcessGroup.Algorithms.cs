using System.Buffers;

namespace HpcEngine.Distributed.Tcp;

public sealed partial class TcpProcessGroup
{
    private int Mod(int x) => ((x % Size) + Size) % Size;

    /// <summary>[start, length) in bytes of segment i when <paramref name="count"/> elements split into Size
    /// parts.</summary>
    private (int Start, int Length) Segment(int count, int elemSize, int i)
    {
        int baseLen = count / Size,
            extra = count % Size;
        int start = i * baseLen + Math.Min(i, extra);
        int len = baseLen + (i < extra ? 1 : 0);
        return (start * elemSize, len * elemSize);
    }

    /// <summary>Chunks of a byte range, each a whole number of elements and at most ChunkBytes.</summary>
    private IEnumerable<(int Start, int Length)> Chunks(int start, int length, int elemSize)
    {
        int chunk = Math.Max(elemSize, _mesh.Options.ChunkBytes / elemSize * elemSize);
        if (length == 0)
            yield return (start, 0);
        for (int o = 0; o < length; o += chunk)
            yield return (start + o, Math.Min(chunk, length - o));
    }

    /// <summary>The op's next frame from <paramref name="from"/>; with <paramref name="into"/> it may be read straight
    /// there (see <see cref="Incoming.CopyTo"/>).</summary>
    private async Task<Incoming> Receive(Op op, int from, Memory<byte> into = default)
    {
        op.WaitingOn = _members[from];
        var link = Link(from);
        op.WaitingLink = link;
        var m = await link.ReceiveAsync(op.Tag, op.Token, into).ConfigureAwait(false);
        op.WaitingLink = null;
        op.WaitingOn = null;
        return m;
    }

    /// <summary>Posts receives for every chunk in <paramref name="ranges"/> from <paramref name="from"/> at once, each
    /// into its place in <paramref name="data"/>, so chunks that arrive while earlier ones are processed are read
    /// straight into place.</summary>
    private List<Task<Incoming>> PostReceives(
        Op op,
        int from,
        Memory<byte> data,
        IEnumerable<(int Start, int Length)> ranges
    )
    {
        var link = Link(from);
        return ranges.Select(r => link.ReceiveAsync(op.Tag, op.Token, data.Slice(r.Start, r.Length))).ToList();
    }

    /// <summary>Awaits a posted receive, naming the peer in the op's state meanwhile.</summary>
    private async Task<Incoming> Await(Op op, int from, Task<Incoming> posted)
    {
        op.WaitingOn = _members[from];
        op.WaitingLink = Link(from);
        var m = await posted.ConfigureAwait(false);
        op.WaitingLink = null;
        op.WaitingOn = null;
        return m;
    }

    /// <summary>Throws when a peer's chunk has the wrong size (the caller disposes the message).</summary>
    private void CheckLength(Op op, Incoming m, int expected, int from, string op2)
    {
        if (m.Length == expected)
            return;
        throw new CollectiveException(
            op2,
            op.Tag & 0xFF_FFFF_FFFF,
            _mesh.Rank,
            _members[from],
            $"rank {_members[from]} sent a {m.Length}-byte chunk where {expected} bytes were expected: the ranks "
                + $"disagree on the tensor size (run with HPCENGINE_DISTRIBUTED_DEBUG=1 to compare ops)"
        );
    }

    /// <summary>Reduce for small messages: every rank sends its buffer to the root, which folds all n in rank
    /// order.</summary>
    private async Task DirectReduce(Op op, Memory<byte> data, DType dtype, ReduceOp rop, int root)
    {
        int n = Size,
            len = data.Length;
        if (Rank != root)
        {
            await Link(root).SendAsync(op.Tag, data, op.Token).ConfigureAwait(false);
            return;
        }
        var parts = new Incoming?[n];
        try
        {
            for (int r = 0; r < n; r++)
            {
                if (r == root)
                    continue;
                parts[r] = await Receive(op, r).ConfigureAwait(false);
                CheckLength(op, parts[r]!, len, r, "reduce");
            }
            FoldInRankOrder(data.Span, parts, root, dtype, rop);
        }
        finally
        {
            foreach (var p in parts)
                p?.Dispose();
        }
    }

    /// <summary>data := parts[0] ⊕ parts[1] ⊕ … in rank order, with this rank's own buffer (data) standing at
    /// <paramref name="self"/>: the same order, so the same bits, on every rank that folds.</summary>
    private static void FoldInRankOrder(Span<byte> data, Incoming?[] parts, int self, DType dtype, ReduceOp rop)
    {
        var acc = ArrayPool<byte>.Shared.Rent(Math.Max(data.Length, 1));
        try
        {
            var a = acc.AsSpan(0, data.Length);
            (self == 0 ? data : parts[0]!.Span).CopyTo(a);
            for (int r = 1; r < parts.Length; r++)
                WireReduce.Apply(rop, dtype, a, r == self ? data : parts[r]!.Span);
            a.CopyTo(data);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(acc);
        }
    }

    /// <summary>Latency-optimal allreduce for small messages: one round in which every rank sends its buffer to every
    /// other; each rank then folds all n buffers in rank order (so every rank computes the same bits).</summary>
    private async Task DirectAllReduce(Op op, Memory<byte> data, DType dtype, ReduceOp rop)
    {
        int n = Size,
            len = data.Length;
        var sends = new List<Task>(n);
        for (int r = 0; r < n; r++)
            if (r != Rank)
                sends.Add(Link(r).SendAsync(op.Tag, data, op.Token));
        var parts = new Incoming?[n];
        try
        {
            for (int r = 0; r < n; r++)
            {
                if (r == Rank)
                    continue;
                parts[r] = await Receive(op, r).ConfigureAwait(false);
                CheckLength(op, parts[r]!, len, r, "allreduce");
            }
            await Task.WhenAll(sends).ConfigureAwait(false);
            FoldInRankOrder(data.Span, parts, Rank, dtype, rop);
        }
        finally
        {
            foreach (var p in parts)
                p?.Dispose();
        }
    }

    /// <summary>Recursive doubling: with p the largest power of two ≤ n and rem = n − p, the first 2·rem ranks pair up
    /// and each even one hands its buffer to the odd one; the p remaining ranks then exchange with the partner whose
    /// virtual rank differs in bit k at round k, each adding what it gets; finally the odd ranks send the result
    /// back to their even partners. Every combine adds exactly two partial sums, so partners compute the same bits
    /// (addition commutes) and all ranks end bitwise equal.</summary>
    private async Task RecursiveDoublingAllReduce(Op op, Memory<byte> data, DType dtype, ReduceOp rop)
    {
        int n = Size,
            p = 1;
        while (p * 2 <= n)
            p *= 2;
        int rem = n - p,
            len = data.Length;
        bool folded = Rank < 2 * rem && Rank % 2 == 0; // hands its data over, gets the result at the end
        if (Rank < 2 * rem)
        {
            if (folded)
                await Link(Rank + 1).SendAsync(op.Tag, data, op.Token).ConfigureAwait(false);
            else
            {
                using var m = await Receive(op, Rank - 1).ConfigureAwait(false);
                CheckLength(op, m, len, Rank - 1, "allreduce");
                WireReduce.Apply(rop, dtype, data.Span, m.Span);
            }
        }
        if (!folded)
        {
            int vr = Rank < 2 * rem ? Rank / 2 : Rank - rem;
            for (int mask = 1; mask < p; mask <<= 1)
            {
                int pv = vr ^ mask,
                    peer = pv < rem ? 2 * pv + 1 : pv + rem;
                var send = Link(peer).SendAsync(op.Tag, data, op.Token);
                using var m = await Receive(op, peer).ConfigureAwait(false);
                await send.ConfigureAwait(false); // data is sent before it is overwritten
                CheckLength(op, m, len, peer, "allreduce");
                WireReduce.Apply(rop, dtype, data.Span, m.Span);
            }
        }
        if (Rank < 2 * rem)
        {
            if (!folded)
                await Link(Rank - 1).SendAsync(op.Tag, data, op.Token).ConfigureAwait(false);
            else
            {
                using var m = await Receive(op, Rank + 1, data).ConfigureAwait(false);
                CheckLength(op, m, len, Rank + 1, "allreduce");
                m.CopyTo(data.Span);
            }
        }
    }

    /// <summary>Pipelined chain broadcast: ranks in ring order from the root; each forwards every chunk onward as soon
    /// as it arrives, so the root's bandwidth, not n times it, bounds the time.</summary>
    private async Task ChainBroadcast(Op op, Memory<byte> data, int root)
    {
        int pos = Mod(Rank - root);
        int prev = Mod(Rank - 1),
            next = Mod(Rank + 1);
        bool last = pos == Size - 1;
        var sends = new List<Task>();
        var chunks = Chunks(0, data.Length, 1).ToList();
        var posted = pos != 0 ? PostReceives(op, prev, data, chunks) : null;
        for (int i = 0; i < chunks.Count; i++)
        {
            var (cs, cl) = chunks[i];
            if (posted != null)
            {
                using var m = await Await(op, prev, posted[i]).ConfigureAwait(false);
                CheckLength(op, m, cl, prev, "broadcast");
                m.CopyTo(data.Span.Slice(cs, cl));
            }
            if (!last)
                sends.Add(Link(next).SendAsync(op.Tag, data.Slice(cs, cl), op.Token));
        }
        await Task.WhenAll(sends).ConfigureAwait(false);
    }

    /// <summary>Ring allgather: own block into place, then n−1 steps passing blocks to the right, chunk by
    /// chunk.</summary>
    private async Task RingAllGather(Op op, Memory<byte> output, Memory<byte> input)
    {
        int n = Size,
            block = input.Length;
        input.Span.CopyTo(output.Span.Slice(Rank * block, block));
        if (n == 1)
            return;
        int right = Mod(Rank + 1);
        var sends = new List<Task>();
        foreach (var (cs, cl) in Chunks(Rank * block, block, 1))
            sends.Add(Link(right).SendAsync(op.Tag, output.Slice(cs, cl), op.Token));
        var gather = Enumerable
            .Range(0, n - 1)
            .SelectMany(t => Chunks(Mod(Rank - t - 1) * block, block, 1).Select(c => (Step: t, c.Start, c.Length)))
            .ToList();
        await PassAround(op, output, gather, sends, "allgather").ConfigureAwait(false);
    }

    /// <summary>Ring reduce-scatter on a working copy of the input: at step t send block (rank−t−1), receive and add
    /// block (rank−t−2); after n−1 steps this rank's block (rank) holds the full reduction.</summary>
    private async Task RingReduceScatter(Op op, Memory<byte> output, Memory<byte> input, DType dtype, ReduceOp rop)
    {
        int n = Size,
            block = output.Length,
            es = dtype.SizeOf();
        if (n == 1)
        {
            input.Span.CopyTo(output.Span);
            if (rop == ReduceOp.Avg)
                WireReduce.Average(dtype, output.Span, n);
            return;
        }
        var work = ArrayPool<byte>.Shared.Rent(input.Length);
        try
        {
            var w = work.AsMemory(0, input.Length);
            input.Span.CopyTo(w.Span);
            int left = Mod(Rank - 1),
                right = Mod(Rank + 1);
            var sends = new List<Task>();
            foreach (var (cs, cl) in Chunks(Mod(Rank - 1) * block, block, es))
                sends.Add(Link(right).SendAsync(op.Tag, w.Slice(cs, cl), op.Token));
            for (int t = 0; t < n - 1; t++)
            {
                int seg = Mod(Rank - t - 2);
                foreach (var (cs, cl) in Chunks(seg * block, block, es))
                {
                    using (var m = await Receive(op, left).ConfigureAwait(false))
                    {
                        CheckLength(op, m, cl, left, "reduce_scatter");
                        WireReduce.Apply(rop, dtype, w.Span.Slice(cs, cl), m.Span);
                    }
                    if (t < n - 2)
                        sends.Add(Link(right).SendAsync(op.Tag, w.Slice(cs, cl), op.Token));
                }
            }
            await Task.WhenAll(sends).ConfigureAwait(false);
            w.Span.Slice(Rank * block, block).CopyTo(output.Span);
            if (rop == ReduceOp.Avg)
                WireReduce.Average(dtype, output.Span, n);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(work);
        }
    }

    /// <summary>All-to-all: block j goes straight to rank j; blocks arrive into place by sender.</summary>
    private async Task DirectAllToAll(Op op, Memory<byte> output, Memory<byte> input)
    {
        int n = Size,
            block = input.Length / n;
        input.Span.Slice(Rank * block, block).CopyTo(output.Span.Slice(Rank * block, block));
        var sends = new List<Task>();
        for (int r = 0; r < n; r++)
            if (r != Rank)
                sends.Add(Link(r).SendAsync(op.Tag, input.Slice(r * block, block), op.Token));
        for (int r = 0; r < n; r++)
        {
            if (r == Rank)
                continue;
            using var m = await Receive(op, r, output.Slice(r * block, block)).ConfigureAwait(false);
            CheckLength(op, m, block, r, "alltoall");
            m.CopyTo(output.Span.Slice(r * block, block));
        }
        await Task.WhenAll(sends).ConfigureAwait(false);
    }
}
