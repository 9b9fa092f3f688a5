using System.Diagnostics;

namespace HpcEngine.Distributed.Tcp;

/// <summary>The connection to one peer: one or several sockets (<see cref="TcpOptions.SocketsPerLink"/>), each a
/// <see cref="LinkSocket"/>. Every frame gets the link's next sequence number and goes out on socket
/// <c>seq mod k</c>, so consecutive chunks of a large op travel in parallel; the receiving side puts frames back in
/// sequence order before delivering them, so the link behaves as one ordered stream whatever the socket count.
/// Delivered frames go to the inbox of their tag (one per op, so several ops can be in flight), where the op waiting
/// for them continues at once on the reader thread. A length above the cap, a bad magic, EOF or a socket error fails
/// the link: every pending and later receive on it throws, naming the peer.</summary>
internal sealed class PeerLink : IAsyncDisposable
{
    /// <summary>Frames up to this size are written by the sending thread when their socket is idle.</summary>
    private const int DirectSendBytes = 64 * 1024;

    private readonly LinkSocket[] _sockets;
    private readonly NetworkEmulation? _emu;
    private readonly Action<PeerLink, Exception> _onFailure;

    private readonly Lock _sendOrder = new();
    private uint _nextSendSeq;
    private readonly Lock _throttleGate = new();
    private long _busyUntilTicks;

    private readonly Lock _recvGate = new();
    private uint _nextRecvSeq;
    private readonly Dictionary<uint, (long Tag, Incoming Msg)> _early = new();
    private readonly Dictionary<long, TagInbox> _inbox = new();
    private Exception? _failure;
    private volatile bool _closing;

    /// <summary>Messages of one tag that arrived before anyone asked, and the receives waiting for the next
    /// ones.</summary>
    private sealed class TagInbox
    {
        public readonly Queue<Incoming> Ready = new();

        /// <summary>Receives waiting, in order, each with the destination its payload may be read into (or
        /// empty).</summary>
        public readonly Queue<(TaskCompletionSource<Incoming> Waiter, Memory<byte> Into)> Waiters = new();
    }

    public int Peer { get; }

    /// <summary>"tcp" or "shm" (a same-host peer over shared memory).</summary>
    public string Transport { get; }

    public PeerLink(
        int peer,
        IReadOnlyList<ILinkStream> streams,
        TcpOptions options,
        Action<PeerLink, Exception> onFailure
    )
    {
        Peer = peer;
        _emu = options.Emulation;
        _onFailure = onFailure;
        Transport = streams[0].Transport;
        Exchange = streams.Count == 1 ? (streams[0] as Shm.ShmLinkStream)?.Exchange : null;
        _sockets = new LinkSocket[streams.Count];
        for (int i = 0; i < streams.Count; i++)
            _sockets[i] = new LinkSocket(
                this,
                i,
                streams[i],
                options.MaxFrameBytes,
                Transport == "shm" ? options.ShmSpin : options.WaiterSpin
            );
        foreach (var s in _sockets)
            s.Start();
    }

    public Exception? Failure => Volatile.Read(ref _failure);

    public bool Closing => _closing;

    public long BytesSent => _sockets.Sum(s => s.BytesSent) + (Exchange?.BytesSent ?? 0);

    public long BytesReceived => _sockets.Sum(s => s.BytesReceived) + (Exchange?.BytesReceived ?? 0);

    /// <summary>The small-op path of a same-host link over shared memory (one stream), else null.</summary>
    public Shm.ShmExchange? Exchange { get; }

    /// <summary>How long since anything (data or a heartbeat) arrived from the peer.</summary>
    public TimeSpan SinceHeard => Stopwatch.GetElapsedTime(_sockets.Max(s => s.LastReceived));

    /// <summary>Sends a heartbeat when nothing has gone to the peer for <paramref name="idle"/> (cheap: one queued
    /// empty frame, only on an idle link).</summary>
    public void Heartbeat(TimeSpan idle)
    {
        if (Failure != null || _closing || Stopwatch.GetElapsedTime(_sockets.Max(s => s.LastSent)) < idle)
            return;
        _sockets[0].Enqueue(new OutFrame(LinkSocket.HeartbeatTag, 0, ReadOnlyMemory<byte>.Empty, null));
    }

    /// <summary>Sends a frame; the task completes once the payload has been written out (the caller may reuse it).
    /// A small frame on an idle socket is written before this returns.</summary>
    public Task SendAsync(long tag, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        ThrowIfFailed();
        bool direct = payload.Length <= DirectSendBytes && !LinkSocket.OnLinkThread && _emu == null;
        LinkSocket socket;
        uint seq;
        TaskCompletionSource? done = null;
        lock (_sendOrder)
        {
            seq = _nextSendSeq++;
            socket = _sockets[seq % (uint)_sockets.Length];
            // Shared memory: written right here whenever the ring has room, from any thread (it never blocks).
            if (socket.WritesWithoutBlocking && _emu == null && socket.TryWriteNow(tag, seq, payload.Span))
                return Task.CompletedTask;
            if (!direct || !socket.TryClaim())
            {
                direct = false;
                done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                socket.Enqueue(new OutFrame(tag, seq, payload, done));
            }
        }
        if (direct)
        {
            socket.SendClaimed(tag, seq, payload.Span);
            return Task.CompletedTask;
        }
        return ct.CanBeCanceled ? done!.Task.WaitAsync(ct) : done!.Task;
    }

    /// <summary>The next frame of <paramref name="tag"/> from this peer. With <paramref name="into"/>, a frame of
    /// exactly that length that has not arrived yet is read straight into it (the result is then <see
    /// cref="Incoming.InPlace"/>): one copy fewer. Receives may be posted ahead; they match frames in order.</summary>
    public Task<Incoming> ReceiveAsync(long tag, CancellationToken ct, Memory<byte> into = default)
    {
        TaskCompletionSource<Incoming> waiter;
        lock (_recvGate)
        {
            // Frames that arrived before the link went down stay readable; only a wait for more fails.
            if (_inbox.TryGetValue(tag, out var box) && box.Ready.TryDequeue(out var ready))
                return Task.FromResult(ready);
            ThrowIfFailed();
            if (box == null)
                _inbox[tag] = box = new TagInbox();
            // No RunContinuationsAsynchronously: the reader thread that delivers the frame runs the op's next step
            // itself, which saves a thread-pool hop per message.
            waiter = new TaskCompletionSource<Incoming>();
            box.Waiters.Enqueue((waiter, into));
        }
        return ct.CanBeCanceled ? WithCancellation(waiter, ct) : waiter.Task;
    }

    private static async Task<Incoming> WithCancellation(TaskCompletionSource<Incoming> waiter, CancellationToken ct)
    {
        // The cancellation completes the waiter from the thread pool, never inline on the timer's thread.
        using (
            ct.UnsafeRegister(
                static (s, token) =>
                    ThreadPool.UnsafeQueueUserWorkItem(
                        w => w.TrySetCanceled(token),
                        (TaskCompletionSource<Incoming>)s!,
                        false
                    ),
                waiter
            )
        )
            return await waiter.Task.ConfigureAwait(false);
    }

    /// <summary>Lets the calling thread read and deliver frames itself while <paramref name="keepWaiting"/> holds (see
    /// <see cref="LinkSocket.Help"/>); with several sockets the reader threads do it (frames may come on
    /// any).</summary>
    public void Help(Func<bool> keepWaiting, DateTime deadline)
    {
        if (_sockets.Length == 1 && Failure == null)
            _sockets[0].Help(keepWaiting, deadline);
    }

    /// <summary>Forgets a finished op's inbox.</summary>
    public void Release(long tag)
    {
        TagInbox? box;
        lock (_recvGate)
            if (!_inbox.Remove(tag, out box))
                return;
        while (box.Ready.TryDequeue(out var m))
            m.Dispose();
    }

    /// <summary>Called by a socket's reader with each frame, in that socket's order; delivers in link order.</summary>
    internal void OnFrame(uint seq, long tag, Incoming m)
    {
        if (_emu is { Latency.Ticks: > 0 })
            Thread.Sleep(_emu.Latency);
        List<(TaskCompletionSource<Incoming> Waiter, Incoming Msg)>? handoffs = null;
        lock (_recvGate)
        {
            if (seq != _nextRecvSeq)
            {
                _early[seq] = (tag, m); // a later frame that came in on another socket first
                return;
            }
            DeliverLocked(tag, m, ref handoffs);
            _nextRecvSeq++;
            while (_early.Remove(_nextRecvSeq, out var next))
            {
                DeliverLocked(next.Tag, next.Msg, ref handoffs);
                _nextRecvSeq++;
            }
        }
        if (handoffs == null)
            return;
        foreach (var (w, msg) in handoffs)
            if (!w.TrySetResult(msg))
                msg.Dispose(); // its op timed out meanwhile (and is taking the group down)
    }

    private void DeliverLocked(long tag, Incoming m, ref List<(TaskCompletionSource<Incoming>, Incoming)>? handoffs)
    {
        if (!_inbox.TryGetValue(tag, out var box))
            _inbox[tag] = box = new TagInbox();
        while (box.Waiters.TryDequeue(out var w))
        {
            if (w.Waiter.Task.IsCompleted)
                continue; // cancelled
            (handoffs ??= []).Add((w.Waiter, m));
            return;
        }
        box.Ready.Enqueue(m);
    }

    /// <summary>Called by a reader with a frame's header: when the frame is the next in link order and the first
    /// receive waiting for its tag posted a destination of its length, takes that receive (the reader then reads the
    /// payload straight into <paramref name="into"/> and calls <see cref="OnFramePlaced"/>).</summary>
    internal bool TryTakeDestination(
        uint seq,
        long tag,
        int length,
        out TaskCompletionSource<Incoming>? waiter,
        out Memory<byte> into
    )
    {
        waiter = null;
        into = default;
        lock (_recvGate)
        {
            if (seq != _nextRecvSeq || !_inbox.TryGetValue(tag, out var box) || box.Ready.Count > 0)
                return false;
            while (box.Waiters.TryPeek(out var w) && w.Waiter.Task.IsCompleted)
                box.Waiters.Dequeue(); // cancelled
            if (!box.Waiters.TryPeek(out var head) || head.Into.Length != length || length == 0)
                return false;
            box.Waiters.Dequeue();
            (waiter, into) = head;
            return true;
        }
    }

    /// <summary>The payload of frame <paramref name="seq"/> is in its posted destination: completes that receive and
    /// delivers any later frames that were waiting for this one.</summary>
    internal void OnFramePlaced(uint seq, TaskCompletionSource<Incoming> waiter, int length)
    {
        List<(TaskCompletionSource<Incoming> Waiter, Incoming Msg)>? handoffs = [(waiter, Incoming.Placed(length))];
        lock (_recvGate)
        {
            _nextRecvSeq = seq + 1;
            while (_early.Remove(_nextRecvSeq, out var next))
            {
                DeliverLocked(next.Tag, next.Msg, ref handoffs);
                _nextRecvSeq++;
            }
        }
        foreach (var (w, msg) in handoffs!)
            if (!w.TrySetResult(msg))
                msg.Dispose();
    }

    /// <summary>How long the writer must wait before sending <paramref name="bytes"/> at the emulated rate: a batch
    /// leaves when its own transmission would have finished on a link of that bandwidth (after the frames before
    /// it).</summary>
    internal TimeSpan Throttle(long bytes)
    {
        if (_emu == null || double.IsPositiveInfinity(_emu.BytesPerSecond))
            return TimeSpan.Zero;
        lock (_throttleGate)
        {
            long now = Stopwatch.GetTimestamp();
            long start = Math.Max(now, _busyUntilTicks);
            _busyUntilTicks = start + (long)(bytes / _emu.BytesPerSecond * Stopwatch.Frequency);
            return _busyUntilTicks > now ? Stopwatch.GetElapsedTime(now, _busyUntilTicks) : TimeSpan.Zero;
        }
    }

    private void ThrowIfFailed()
    {
        if (Volatile.Read(ref _failure) != null)
            throw Failed();
    }

    internal IOException Failed() =>
        new($"the link to rank {Peer} is down: {_failure?.Message ?? "it was closed"}", _failure);

    /// <summary>A socket's reader or writer stopped with <paramref name="e"/>.</summary>
    internal void OnSocketFailed(Exception e)
    {
        // A peer that leaves says goodbye on every socket; frames still on the way on the others must be delivered
        // before the link counts as closed.
        if (e is PeerLeftException && Interlocked.Increment(ref _socketsLeft) < _sockets.Length)
            return;
        Fail(e);
    }

    private int _socketsLeft;

    private void Fail(Exception e)
    {
        List<TaskCompletionSource<Incoming>> waiters = [];
        lock (_recvGate)
        {
            if (_failure != null)
                return;
            _failure = e;
            foreach (var box in _inbox.Values)
                while (box.Waiters.TryDequeue(out var w))
                    waiters.Add(w.Waiter);
        }
        foreach (var s in _sockets)
            s.Shutdown();
        var failed = Failed();
        foreach (var w in waiters)
            ThreadPool.UnsafeQueueUserWorkItem(x => x.TrySetException(failed), w, false);
        // A peer that left cleanly fails only what still waits on it; anything else takes the group down.
        if (e is not PeerLeftException && !_closing)
            _onFailure(this, e);
    }

    /// <summary>Says goodbye on every socket (so the peer does not take our EOF for a crash), then closes.</summary>
    public async Task CloseGracefullyAsync()
    {
        _closing = true;
        if (Failure == null)
        {
            var byes = new List<Task>();
            foreach (var s in _sockets)
            {
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                s.Enqueue(new OutFrame(LinkSocket.GoodbyeTag, 0, ReadOnlyMemory<byte>.Empty, done));
                byes.Add(done.Task);
            }
            try
            {
                await Task.WhenAll(byes).WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or TimeoutException)
            {
                // the peer is already gone; nothing to say goodbye to
            }
        }
        await DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Closes the link (abortively: the peer sees a reset or EOF at once), first trying briefly to tell the
    /// peer why.</summary>
    public void Abort(Exception reason)
    {
        if (Failure == null && !_closing)
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var why = System.Text.Encoding.UTF8.GetBytes(
                reason.Message.Length > 2000 ? reason.Message[..2000] : reason.Message
            );
            _sockets[0].Enqueue(new OutFrame(LinkSocket.AbortTag, 0, why, done));
            // Best effort: whether it goes out or not, the abort goes on.
            Task.WhenAny(done.Task, Task.Delay(300)).Wait();
        }
        Fail(reason);
    }

    public async ValueTask DisposeAsync()
    {
        _closing = true;
        Abort(new IOException("the process group was closed"));
        await Task.Run(() =>
            {
                foreach (var s in _sockets)
                    s.Close(TimeSpan.FromSeconds(2));
            })
            .ConfigureAwait(false);
    }
}
