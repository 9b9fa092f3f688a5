using System.Buffers;
using System.Buffers.Binary;

namespace HpcEngine.Distributed.Tcp;

/// <summary>Collectives over TCP: the engine's own backend. Each op gets a tag from the group's sequence number, runs
/// asynchronously against the peer links, and fails with a <see cref="CollectiveException"/> on timeout or when a
/// peer dies — after which the whole group is aborted (its sockets closed), so the other ranks fail fast too.
/// Algorithms are in TcpProcessGroup.Algorithms.cs.</summary>
public sealed partial class TcpProcessGroup : IProcessGroup
{
    private readonly TcpMesh _mesh;
    private readonly bool _ownsMesh;
    private readonly int[] _members;
    private readonly long _groupId;
    private readonly FlightRecorder _flight = new();
    private long _seq;
    private IStore? _ownedStore;

    /// <inheritdoc/>
    public int Rank { get; }

    /// <inheritdoc/>
    public int Size => _members.Length;

    /// <inheritdoc/>
    public string Backend => "tcp";

    /// <summary>The settings this group's links were built with.</summary>
    public TcpOptions Options => _mesh.Options;

    /// <summary>Bytes this process has put on the wire (all links, frames included).</summary>
    public long BytesSent => _mesh.BytesSent;

    /// <summary>Bytes this process has sent to group rank <paramref name="rank"/> (frames included; 0 for
    /// itself).</summary>
    public long BytesSentTo(int rank) => rank == Rank ? 0 : Link(rank).BytesSent;

    /// <summary>How this rank's link to group rank <paramref name="rank"/> carries its bytes: "shm" (a peer on this
    /// host, over shared memory), "tcp", or "self".</summary>
    public string TransportTo(int rank) => rank == Rank ? "self" : _mesh.TransportTo(_members[rank]) ?? "tcp";

    /// <summary>The group rank whose link failed first and aborted this group (a dead, frozen or cut-off peer), or
    /// null while the group is healthy or when it failed for another reason.</summary>
    public int? FailedPeer => _mesh.FailedPeer is { } g && Array.IndexOf(_members, g) is >= 0 and var r ? r : null;

    /// <summary>The flight recorder's report of the last collectives.</summary>
    public string FlightRecord => _flight.ToString();

    private TcpProcessGroup(TcpMesh mesh, bool ownsMesh, int[] members, long groupId)
    {
        _mesh = mesh;
        _ownsMesh = ownsMesh;
        _members = members;
        _groupId = groupId;
        Rank = Array.IndexOf(members, mesh.Rank);
        _sharedMemoryOnly = members.All(m => m == mesh.Rank || mesh.TransportTo(m) == "shm");
        _exchanges = ExchangesOf(mesh, groupId);
    }

    /// <summary>Every peer of this group is on this host, over shared memory.</summary>
    private readonly bool _sharedMemoryOnly;

    /// <summary>Joins the group of <paramref name="size"/> ranks that rendezvous through <paramref
    /// name="store"/>.</summary>
    public static TcpProcessGroup Connect(
        IStore store,
        int rank,
        int size,
        TcpOptions? options = null,
        string prefix = "pg"
    )
    {
        ArgumentNullException.ThrowIfNull(store);
        if (size < 1 || rank < 0 || rank >= size)
            throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is not in a world of size {size}");
        var mesh = TcpMesh.Connect(store, rank, size, options ?? new TcpOptions(), prefix);
        return new TcpProcessGroup(mesh, true, Enumerable.Range(0, size).ToArray(), 0);
    }

    /// <inheritdoc/>
    public IProcessGroup? NewGroup(IReadOnlyList<int> ranks)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        if (ranks.Count == 0 || ranks.Distinct().Count() != ranks.Count || ranks.Any(r => r < 0 || r >= Size))
            throw new ArgumentException(
                $"new_group: ranks [{string.Join(", ", ranks)}] must be distinct ranks of this group (0..{Size - 1})"
            );
        long id = _mesh.NextGroupId(); // every rank calls NewGroup in the same order, so ids agree
        var global = ranks.Select(r => _members[r]).ToArray();
        return Array.IndexOf(global, _mesh.Rank) < 0 ? null : new TcpProcessGroup(_mesh, false, global, id);
    }

    private PeerLink Link(int groupRank) => _mesh.Link(_members[groupRank]);

    /// <summary>State of one running op: its tag, cancellation, and the peer it waits on (for error
    /// messages).</summary>
    private sealed class Op(long tag, CancellationToken ct)
    {
        public long Tag { get; } = tag;
        public CancellationToken Token { get; } = ct;
        public int? WaitingOn;

        /// <summary>The link this op waits to receive from, if any: a thread in Work.Wait may read it on the op's
        /// behalf.</summary>
        public volatile PeerLink? WaitingLink;
    }

    /// <summary>Runs <paramref name="body"/> as collective <paramref name="name"/>: sequence number, timeout, desync
    /// check, flight recorder, and the conversion of any failure into a CollectiveException that also aborts the
    /// group.</summary>
    private Work Run(
        string name,
        long bytes,
        TimeSpan? timeout,
        Func<Op, Task> body,
        string? signature = null,
        bool p2p = false,
        long p2pTag = 0
    )
    {
        long seq = p2p ? 0 : Interlocked.Increment(ref _seq);
        long tag = p2p ? (1L << 62) | (_groupId << 40) | p2pTag : (_groupId << 40) | (seq & 0xFF_FFFF_FFFF);
        var entry = _flight.Start(name, seq, bytes);
        if (_mesh.Failure is { } dead)
        {
            FlightRecorder.End(entry, "failed");
            return new Work(Task.FromException(Wrap(name, seq, null, dead)));
        }
        var limit = timeout ?? _mesh.Options.Timeout;
        // The Work completes through its own source with asynchronous continuations: the op's steps run on the link
        // reader threads that deliver its frames, and user code awaiting the Work must never run there.
        var work = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cts = new CancellationTokenSource();
        var op = new Op(tag, cts.Token);
        _mesh.Deadlines.Track(cts, limit, () =>
            $"rank {_mesh.Rank}: {name} #{seq}" + (op.WaitingOn is { } w ? $" waits on rank {w}" : "") + _mesh.Silence()
        );
        // The body starts on the caller's thread (no thread-pool hop before the first send): small ops are
        // latency-bound, and every hop costs tens of microseconds on a busy machine.
        _ = (
            (Func<Task>)(
                async () =>
                {
                    try
                    {
                        if (_mesh.Options.CheckDesync && signature != null && Size > 1)
                            await CheckDesync(op, name, seq, signature).ConfigureAwait(false);
                        await body(op).ConfigureAwait(false);
                        FlightRecorder.End(entry, "completed");
                        work.TrySetResult();
                    }
                    catch (Exception e)
                    {
                        FlightRecorder.End(entry, e is OperationCanceledException ? "timed out" : "failed");
                        var ce =
                            e is CollectiveException c ? c
                            : e is OperationCanceledException
                                ? Wrap(
                                    name,
                                    seq,
                                    op.WaitingOn,
                                    new TimeoutException(
                                        $"timed out after {limit.TotalSeconds:F1}s{(op.WaitingOn.HasValue ? $" waiting for rank {op.WaitingOn}" : "")}{_mesh.Silence()}"
                                    )
                                )
                            : Wrap(name, seq, op.WaitingOn ?? PeerOf(e), e);
                        _mesh.Abort(ce);
                        work.TrySetException(ce);
                    }
                    finally
                    {
                        _mesh.Deadlines.Release(cts);
                        cts.Dispose();
                        if (!p2p && Size > 1)
                            for (int r = 0; r < Size; r++)
                                if (r != Rank)
                                    Link(r).Release(tag);
                    }
                }
            )
        )();
        // Latency-bound ops let their waiter read for them; large ones leave it to the link threads, which overlap
        // receiving, reducing and sending over TCP. Over shared memory a read is a memory copy, not a wait on the
        // kernel, and the waiter reading for itself saves two thread hand-overs per op at every size (measured on 2
        // cores, 2 ranks, 256 KB: 33 µs against 406 µs through the link threads).
        return (bytes <= _mesh.Options.SmallMessageBytes || _sharedMemoryOnly) && Size > 1
            ? new Work(work.Task, deadline => Help(op, work.Task, deadline))
            : new Work(work.Task);
    }

    /// <summary>Runs on a thread blocked in Work.Wait: reads the links the op waits on, so the op's steps run here.
    /// Returns when the op completes, the deadline passes, or the link's reader thread is already on it.</summary>
    private static bool Help(Op op, Task task, DateTime deadline)
    {
        while (!task.IsCompleted && DateTime.UtcNow < deadline)
        {
            var link = op.WaitingLink;
            if (link == null)
                return false; // waiting on a send: nothing to read for it
            link.Help(() => !task.IsCompleted && op.WaitingLink == link, deadline);
            if (!task.IsCompleted && op.WaitingLink == link)
                return false; // the reader thread had the role
        }
        return task.IsCompleted;
    }

    private static int? PeerOf(Exception e) =>
        e switch
        {
            IOException io when io.Message.StartsWith("the link to rank ", StringComparison.Ordinal) => int.TryParse(
                io.Message["the link to rank ".Length..].Split(' ')[0],
                out int p
            )
                ? p
                : null,
            _ => null,
        };

    /// <summary>A CollectiveException for this rank; <paramref name="peer"/> is a global rank.</summary>
    private CollectiveException Wrap(string op, long seq, int? peer, Exception e) =>
        new(op, seq, _mesh.Rank, peer, e.Message, e) { FlightRecord = _flight.ToString() };

    /// <summary>Opt-in: every rank sends its (op, dtype, count, sequence) to every other; any difference names both
    /// sides.</summary>
    private async Task CheckDesync(Op op, string name, long seq, string signature)
    {
        var mine = System.Text.Encoding.UTF8.GetBytes($"{name} #{seq} {signature}");
        long tag = op.Tag | (1L << 61);
        var sends = new List<Task>();
        for (int r = 0; r < Size; r++)
            if (r != Rank)
                sends.Add(Link(r).SendAsync(tag, mine, op.Token));
        for (int r = 0; r < Size; r++)
        {
            if (r == Rank)
                continue;
            op.WaitingOn = _members[r];
            using var m = await Link(r).ReceiveAsync(tag, op.Token).ConfigureAwait(false);
            var theirs = System.Text.Encoding.UTF8.GetString(m.Span);
            if (!m.Span.SequenceEqual(mine))
                throw new CollectiveException(
                    name,
                    seq,
                    _mesh.Rank,
                    _members[r],
                    $"desync: this rank runs '{System.Text.Encoding.UTF8.GetString(mine)}' but rank {_members[r]} runs "
                        + $"'{theirs}'"
                );
            Link(r).Release(tag);
        }
        await Task.WhenAll(sends).ConfigureAwait(false);
    }

    private static void CheckTensor(string op, Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t, op);
        t.CheckAlive();
        if (!t.IsContiguous)
            throw new ArgumentException($"{op}: the tensor must be contiguous (call Contiguous() first)");
        if (t.Device != Device.Cpu)
            throw new DeviceMismatchException(
                $"{op}: the tcp backend takes CPU tensors; use the nccl backend for {t.Device}"
            );
    }

    private static bool Reduced(DType t) => t is DType.BFloat16 or DType.Float16;

    private void CheckRoot(string op, int root)
    {
        if (root < 0 || root >= Size)
            throw new ArgumentOutOfRangeException(
                nameof(root),
                $"{op}: root {root} is not a rank of this group (0..{Size - 1})"
            );
    }

    private void CheckPeer(string op, int peer)
    {
        if (peer < 0 || peer >= Size || peer == Rank)
            throw new ArgumentOutOfRangeException(
                nameof(peer),
                $"{op}: peer {peer} must be another rank of this group (0..{Size - 1}, not {Rank})"
            );
    }

    /// <summary>Test hook: drop every socket without a goodbye, as a killed process would.</summary>
    internal void SimulateCrash() => _mesh.Abort(new IOException("simulated crash"));

    /// <summary>Test hook: stop sending heartbeats, as a frozen (SIGSTOPped) process would; its sockets stay open.</summary>
    internal void SimulateFreeze() => _mesh.Freeze();

    /// <summary>Makes the group dispose the store it rendezvoused through (rank 0's store serves the others).</summary>
    internal TcpProcessGroup OwnStore(IStore store)
    {
        _ownedStore = store;
        return this;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_ownsMesh)
            _mesh.Dispose();
        _ownedStore?.Dispose();
    }
}
