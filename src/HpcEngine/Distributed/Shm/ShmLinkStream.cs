using System.Diagnostics;
using System.Net.Sockets;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Distributed.Shm;

/// <summary>A link stream between two ranks of one host: one <see cref="ShmRing"/> each way in a <see
/// cref="ShmSegment"/>. A waiting side polls, yielding its core between polls, for <see cref="TcpOptions.ShmSpin"/>,
/// then sleeps on a futex in slices. <para>Liveness: the TCP socket the pair met on stays open and silent; a peer that
/// dies has its socket closed by the kernel, which a sleeping side sees at its next slice (at most <see
/// cref="LivenessSlice"/>) and reads as the end of the stream — the same "rank p closed the connection" the TCP
/// transport reports. A frozen peer (SIGSTOP) stops its heartbeats, which arrive over the ring like any frame, so the
/// link's silence detection covers it unchanged. A writer blocked on a full ring for the send timeout fails like a TCP
/// send timeout.</para></summary>
internal sealed class ShmLinkStream : ILinkStream
{
    /// <summary>How long a sleeper sleeps before it checks the peer's liveness and its own shutdown again.</summary>
    private static readonly TimeSpan LivenessSlice = TimeSpan.FromMilliseconds(20);

    private readonly ShmSegment _segment;
    private readonly ShmRing _in,
        _out;
    private readonly Socket _liveness;
    private readonly int _peer;
    private readonly long _spinTicks;
    private readonly TimeSpan _sendTimeout;
    private readonly Func<bool> _readable,
        _writable;
    private volatile bool _shutdown;
    private volatile bool _peerGone;
    private long _lastLivenessCheck;

    /// <param name="segment">the mapped segment (this stream owns it)</param>
    /// <param name="creator">whether this rank created it (it writes ring 0)</param>
    /// <param name="liveness">the pair's TCP socket, kept open as a death notice (this stream owns it)</param>
    /// <param name="peer">the peer's rank (for messages)</param>
    /// <param name="spin">how long a waiting side polls before it sleeps</param>
    /// <param name="sendTimeout">how long a write may wait on a full ring before the peer counts as stuck</param>
    public ShmLinkStream(
        ShmSegment segment,
        bool creator,
        Socket liveness,
        int peer,
        TimeSpan spin,
        TimeSpan sendTimeout
    )
    {
        _segment = segment;
        _out = creator ? segment.CreatorToOpener : segment.OpenerToCreator;
        _in = creator ? segment.OpenerToCreator : segment.CreatorToOpener;
        _liveness = liveness;
        _peer = peer;
        _spinTicks = (long)(spin.TotalSeconds * Stopwatch.Frequency);
        _sendTimeout = sendTimeout;
        Exchange = new ShmExchange(segment, creator);
        _readable = () => _in.Available > 0 || _in.ProducerClosed || _shutdown;
        _writable = () => _out.Available < _segment.RingBytes || _out.ConsumerClosed || _shutdown;
    }

    public string Transport => "shm";

    /// <summary>The link's small-op path (the segment's exchange rings).</summary>
    public ShmExchange Exchange { get; }

    private bool Ended => _shutdown || _in.ProducerClosed || _peerGone;

    public bool Poll(int microseconds)
    {
        _segment.Enter();
        try
        {
            if (_in.Available > 0 || Ended)
                return true;
            if (microseconds == 0)
                return false;
            long start = Stopwatch.GetTimestamp();
            long limit = microseconds < 0 ? long.MaxValue : start + microseconds * Stopwatch.Frequency / 1_000_000;
            while (true)
            {
                long now = Stopwatch.GetTimestamp();
                if (now - start < _spinTicks)
                    Thread.Yield(); // a co-located rank that is runnable gets the core
                else
                {
                    if (now >= limit)
                        return false;
                    long sleepUs = (long)LivenessSlice.TotalMicroseconds;
                    if (microseconds > 0)
                        sleepUs = Math.Min(sleepUs, (long)Stopwatch.GetElapsedTime(now, limit).TotalMicroseconds + 1);
                    _in.Sleep(reader: true, _readable, sleepUs);
                    CheckPeer();
                }
                if (_in.Available > 0 || Ended)
                    return true;
            }
        }
        finally
        {
            _segment.Exit();
        }
    }

    public int Receive(Span<byte> destination)
    {
        if (destination.IsEmpty)
            return 0;
        while (true)
        {
            _segment.Enter();
            try
            {
                int n = _in.TryRead(destination);
                if (n > 0)
                    return n;
                if (Ended)
                    return 0; // the bytes written before the end have been read
            }
            finally
            {
                _segment.Exit();
            }
            Poll(-1);
        }
    }

    public void Send(ReadOnlySpan<byte> data)
    {
        _segment.Enter();
        try
        {
            long waitingSince = 0;
            while (!data.IsEmpty)
            {
                if (_shutdown)
                    throw new IOException("the link was closed");
                if (_out.ConsumerClosed || _peerGone)
                    throw new IOException($"rank {_peer} closed the connection");
                int n = _out.TryWrite(data);
                if (n > 0)
                {
                    data = data[n..];
                    waitingSince = 0;
                    continue;
                }
                // The ring is full: the peer is behind. Spin for the budget, then sleep in slices.
                long now = Stopwatch.GetTimestamp();
                if (waitingSince == 0)
                    waitingSince = now;
                if (now - waitingSince < _spinTicks)
                {
                    Thread.Yield();
                    continue;
                }
                if (Stopwatch.GetElapsedTime(waitingSince) > _sendTimeout)
                    throw new IOException(
                        $"rank {_peer} has read nothing from its shared-memory ring for "
                            + $"{_sendTimeout.TotalSeconds:F0}s (frozen or stuck)"
                    );
                _out.Sleep(reader: false, _writable, (long)LivenessSlice.TotalMicroseconds);
                CheckPeer();
            }
        }
        finally
        {
            _segment.Exit();
        }
    }

    public bool TrySendNow(ReadOnlySpan<byte> header, ReadOnlySpan<byte> payload)
    {
        if (_shutdown || _peerGone)
            return false; // the blocking path reports why
        _segment.Enter();
        try
        {
            return !_out.ConsumerClosed && _out.TryWriteAll(header, payload);
        }
        finally
        {
            _segment.Exit();
        }
    }

    public void Send(List<ArraySegment<byte>> segments)
    {
        foreach (var s in segments)
            Send(s.AsSpan());
    }

    /// <summary>Whether the peer's process still holds its end of the pair's socket (at most once per slice: a poll is
    /// a system call). Readable means EOF or a reset: nothing is ever sent on it after the upgrade.</summary>
    private void CheckPeer()
    {
        long now = Stopwatch.GetTimestamp();
        if (_peerGone || Stopwatch.GetElapsedTime(Volatile.Read(ref _lastLivenessCheck), now) < LivenessSlice)
            return;
        Volatile.Write(ref _lastLivenessCheck, now);
        try
        {
            if (_liveness.Poll(0, SelectMode.SelectRead))
                _peerGone = true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            _peerGone = true;
        }
    }

    public void Shutdown()
    {
        if (_shutdown)
            return;
        _shutdown = true;
        try
        {
            _segment.Enter();
        }
        catch (ObjectDisposedException)
        {
            return;
        }
        try
        {
            _out.CloseProducer();
            _in.CloseConsumer();
            _in.WakeEveryone();
            _out.WakeEveryone();
            Exchange.Shutdown();
        }
        finally
        {
            _segment.Exit();
        }
    }

    public void Dispose()
    {
        Shutdown();
        _segment.Dispose();
        _liveness.Dispose();
    }
}
