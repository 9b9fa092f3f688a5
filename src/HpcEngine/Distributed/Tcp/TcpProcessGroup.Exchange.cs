using System.Diagnostics;
using HpcEngine.Distributed.Shm;

namespace HpcEngine.Distributed.Tcp;

/// <summary>Small allreduces of a group whose peers are all on this host: recursive doubling run on the calling
/// thread over the links' exchange rings (<see cref="ShmExchange"/>), each partner's data reduced straight out of
/// shared memory. The op's cost is then two copies and a reduce instead of frames, tag lookups, tasks and thread
/// hand-overs (4 KB with 2 ranks on the 2-core VM: see bench/RESULTS.md, #13). Same algorithm, so the same bits on
/// every rank, as <see cref="RecursiveDoublingAllReduce"/>; the same failures as every op: a timeout naming the rank
/// waited on, a dead or departed peer (the link's reader thread notices it, as for any op), and a desync — every
/// message carries its op's sequence number, dtype, count and reduction, so a mismatch is named on both sides even
/// without HPCENGINE_DISTRIBUTED_DEBUG. The op completes before AllReduce returns: a small op costs microseconds, and
/// the peers' lockstep bounds the wait.</summary>
public sealed partial class TcpProcessGroup
{
    private const byte ExchangeAllReduceKind = 1;

    /// <summary>Each group rank's exchange (null for this rank), or null when this group does not use them: only
    /// the group that owns the mesh does (sub-groups share its links, and each ring must keep one producer), and only
    /// when every peer is on this host over shared memory with no emulated network.</summary>
    private readonly ShmExchange?[]? _exchanges;

    /// <summary>One exchange op at a time (callers issue ops in order; this keeps each ring single-producer even if
    /// they do not).</summary>
    private readonly Lock _exchangeGate = new();

    private ShmExchange?[]? ExchangesOf(TcpMesh mesh, long groupId)
    {
        if (
            groupId != 0
            || !_sharedMemoryOnly
            || Size < 2
            || mesh.Options.Emulation != null
            || !mesh.Options.ShmExchange
        )
            return null;
        var all = new ShmExchange?[Size];
        for (int r = 0; r < Size; r++)
            if (r != Rank && (all[r] = mesh.Link(_members[r]).Exchange) == null)
                return null;
        return all;
    }

    /// <summary>Whether an allreduce of <paramref name="bytes"/> (as reduced) asked to run <paramref name="asked"/>
    /// runs over the exchange rings: automatic or recursive doubling, up to
    /// <see cref="TcpOptions.ShmExchangeMaxBytes"/>.</summary>
    private bool GoesByExchange(AllReduceAlgorithm asked, long bytes) =>
        _exchanges != null
        && asked is AllReduceAlgorithm.Auto or AllReduceAlgorithm.RecursiveDoubling
        && bytes <= _mesh.Options.ShmExchangeMaxBytes;

    /// <summary>The state of one exchange op: what it is, its deadline, and the group rank it waits on.</summary>
    private struct ExchangeCall
    {
        public ExchangeHeader Mine;
        public long Deadline;
        public int? WaitingOn;

        /// <summary>Set once the op first sleeps: from then on the mesh's deadline tick names it in stall
        /// warnings, as it does every other op (a fast op never pays for the bookkeeping).</summary>
        public CancellationTokenSource? Tracked;
    }

    private Work ExchangeAllReduce(Tensor tensor, ReduceOp rop, TimeSpan? timeout)
    {
        long seq = Interlocked.Increment(ref _seq);
        var data = tensor.AsByteMemory().Span;
        var entry = _flight.Start("allreduce", seq, data.Length);
        if (_mesh.Failure is { } dead)
        {
            FlightRecorder.End(entry, "failed");
            return new Work(Task.FromException(Wrap("allreduce", seq, null, dead)));
        }
        var limit = timeout ?? _mesh.Options.Timeout;
        var call = new ExchangeCall
        {
            Mine = new ExchangeHeader(
                seq,
                tensor.NumEl,
                data.Length,
                0,
                ExchangeAllReduceKind,
                (byte)tensor.DType,
                (byte)rop
            ),
            Deadline = Stopwatch.GetTimestamp() + (long)(limit.TotalSeconds * Stopwatch.Frequency),
        };
        try
        {
            lock (_exchangeGate)
                ExchangeRecursiveDoubling(ref call, data, tensor.DType, rop);
            if (rop == ReduceOp.Avg)
                WireReduce.Average(tensor.DType, data, Size);
            FlightRecorder.End(entry, "completed");
            return Work.Done;
        }
        catch (Exception e)
        {
            bool timedOut = e is TimeoutException;
            FlightRecorder.End(entry, timedOut ? "timed out" : "failed");
            int? peer = call.WaitingOn is int g ? _members[g] : PeerOf(e);
            var ce =
                e as CollectiveException
                ?? Wrap(
                    "allreduce",
                    seq,
                    peer,
                    timedOut
                        ? new TimeoutException(
                            $"timed out after {limit.TotalSeconds:F1}s waiting for rank {peer}{_mesh.Silence()}"
                        )
                        : e
                );
            _mesh.Abort(ce);
            return new Work(Task.FromException(ce));
        }
        finally
        {
            if (call.Tracked is { } tracked)
            {
                _mesh.Deadlines.Release(tracked);
                tracked.Dispose();
            }
        }
    }

    /// <summary><see cref="RecursiveDoublingAllReduce"/>'s steps, each a post to the partner and a take from
    /// it.</summary>
    private void ExchangeRecursiveDoubling(ref ExchangeCall call, Span<byte> data, DType dtype, ReduceOp rop)
    {
        int n = Size,
            p = 1;
        while (p * 2 <= n)
            p *= 2;
        int rem = n - p;
        bool folded = Rank < 2 * rem && Rank % 2 == 0;
        if (Rank < 2 * rem)
            Step(ref call, folded ? Rank + 1 : Rank - 1, data, send: folded, receive: !folded, dtype, rop);
        if (!folded)
        {
            int vr = Rank < 2 * rem ? Rank / 2 : Rank - rem;
            for (int mask = 1; mask < p; mask <<= 1)
            {
                int pv = vr ^ mask,
                    peer = pv < rem ? 2 * pv + 1 : pv + rem;
                Step(ref call, peer, data, send: true, receive: true, dtype, rop);
            }
        }
        if (Rank < 2 * rem)
            Step(ref call, folded ? Rank + 1 : Rank - 1, data, send: !folded, receive: folded, dtype, null);
    }

    /// <summary>One step with <paramref name="peer"/>: our data to it, its data reduced into ours (or, with no
    /// <paramref name="rop"/>, copied over ours: the folded ranks' final result); either side may be skipped. Data
    /// longer than a message goes in pieces, the next piece posted before the current one is taken, so both sides
    /// copy and reduce at once.</summary>
    private void Step(
        ref ExchangeCall call,
        int peer,
        Span<byte> data,
        bool send,
        bool receive,
        DType dtype,
        ReduceOp? rop
    )
    {
        int piece = ShmExchange.MaxPayload / 64 * 64,
            pieces = Math.Max(1, (data.Length + piece - 1) / piece);
        Span<byte> Piece(Span<byte> d, int i) => d.Slice(i * piece, Math.Min(piece, d.Length - i * piece));
        if (send)
            Post(ref call, peer, Piece(data, 0), 0);
        for (int i = 0; i < pieces; i++)
        {
            if (send && i + 1 < pieces)
                Post(ref call, peer, Piece(data, i + 1), i + 1);
            if (receive)
                Take(ref call, peer, Piece(data, i), i, dtype, rop);
        }
    }

    private void Post(ref ExchangeCall call, int peer, ReadOnlySpan<byte> data, int piece)
    {
        var ex = _exchanges![peer]!;
        var header = call.Mine with { Bytes = data.Length, Piece = piece };
        while (!ex.TryPost(header, data))
            AwaitExchange(ref call, peer, ex, post: true, data.Length);
    }

    /// <summary>Takes the partner's message for this op and reduces it into <paramref name="data"/> (or, with no
    /// <paramref name="rop"/>, copies it there: the folded ranks' final result).</summary>
    private void Take(ref ExchangeCall call, int peer, Span<byte> data, int piece, DType dtype, ReduceOp? rop)
    {
        var ex = _exchanges![peer]!;
        ExchangeHeader theirs;
        ReadOnlySpan<byte> first,
            second;
        while (!ex.TryPeek(out theirs, out first, out second))
            AwaitExchange(ref call, peer, ex, post: false, data.Length);
        try
        {
            if (theirs != call.Mine with { Bytes = data.Length, Piece = piece })
                throw new CollectiveException(
                    "allreduce",
                    call.Mine.Seq,
                    _mesh.Rank,
                    _members[peer],
                    $"desync: this rank runs '{Describe(call.Mine)}' but rank {_members[peer]} runs '{Describe(theirs)}'"
                )
                {
                    FlightRecord = _flight.ToString(),
                };
            var head = data[..first.Length];
            var tail = data[first.Length..];
            if (rop is { } r)
            {
                WireReduce.Apply(r, dtype, head, first);
                WireReduce.Apply(r, dtype, tail, second);
            }
            else
            {
                first.CopyTo(head);
                second.CopyTo(tail);
            }
        }
        finally
        {
            ex.Release(theirs);
        }
    }

    private static string Describe(ExchangeHeader h) =>
        h.Kind == ExchangeAllReduceKind && Enum.IsDefined((DType)h.DType) && Enum.IsDefined((ReduceOp)h.Reduce)
            ? $"allreduce #{h.Seq} {((DType)h.DType).TorchName()} x{h.Count} {(ReduceOp)h.Reduce}"
            : $"op kind {h.Kind} #{h.Seq} ({h.Bytes} bytes)";

    /// <summary>Waits until <paramref name="ex"/> can take a post or has a message: spins while each rank has a core
    /// (<see cref="TcpOptions.WaiterSpin"/>), then polls yielding the core (<see cref="TcpOptions.ShmSpin"/>: a
    /// co-located rank that is runnable gets it), then sleeps on the ring's futex in slices, between which it looks
    /// for the end of the link or of the group and for the deadline.</summary>
    private void AwaitExchange(ref ExchangeCall call, int peer, ShmExchange ex, bool post, int bytes)
    {
        call.WaitingOn = peer;
        long start = Stopwatch.GetTimestamp();
        long spinUntil = start + (long)(_mesh.Options.WaiterSpin.TotalSeconds * Stopwatch.Frequency);
        long yieldUntil = spinUntil + (long)(_mesh.Options.ShmSpin.TotalSeconds * Stopwatch.Frequency);
        while (!ex.Ready(post, bytes))
        {
            long now = Stopwatch.GetTimestamp();
            if (now < spinUntil)
                Thread.SpinWait(4);
            else if (now < yieldUntil)
                Thread.Yield();
            else
            {
                ThrowIfEnded(ref call, peer, ex, now);
                if (call.Tracked == null)
                    Track(ref call, peer, now);
                ex.Sleep(post, bytes, Math.Min(20_000, (call.Deadline - now) * 1_000_000 / Stopwatch.Frequency + 1));
            }
        }
        call.WaitingOn = null;
    }

    private void Track(ref ExchangeCall call, int peer, long now)
    {
        call.Tracked = new CancellationTokenSource();
        long seq = call.Mine.Seq;
        int waitedOn = _members[peer];
        _mesh.Deadlines.Track(
            call.Tracked,
            TimeSpan.FromSeconds((call.Deadline - now) / (double)Stopwatch.Frequency),
            () => $"rank {_mesh.Rank}: allreduce #{seq} waits on rank {waitedOn}" + _mesh.Silence()
        );
    }

    private void ThrowIfEnded(ref ExchangeCall call, int peer, ShmExchange ex, long now)
    {
        if (_mesh.Failure is { } failed)
            throw new IOException(failed.Message, failed);
        var link = Link(peer);
        if (link.Failure != null)
            throw link.Failed();
        if (ex.PeerClosed)
        {
            // The peer shut its link down; its reader thread here says why (left, aborted, died) within moments.
            var until = now + Stopwatch.Frequency / 5;
            while (link.Failure == null && _mesh.Failure == null && Stopwatch.GetTimestamp() < until)
                Thread.Sleep(1);
            throw link.Failure != null
                ? link.Failed()
                : new IOException($"rank {_members[peer]} closed the connection");
        }
        if (now >= call.Deadline)
            throw new TimeoutException();
    }
}
