using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace HpcEngine.Distributed.Tcp;

/// <summary>One stream (a TCP socket or a shared-memory ring pair, <see cref="ILinkStream"/>) of a <see
/// cref="PeerLink"/>, driven by two dedicated threads doing blocking I/O: a reader that parses frames <c>[u32
/// magic][u32 seq][i64 tag][i64 length][payload]</c> and hands each to the link, and a writer that drains a queue,
/// gathering every queued frame into one <c>sendmsg</c>. A small frame whose socket is idle is written by the sending
/// thread itself (<see cref="TryClaim"/>), so a latency-bound message costs no thread hop before it leaves. <para>Why
/// threads and blocking calls rather than async sockets and pipes: on Linux, .NET's async socket path hands every
/// completion from the epoll thread to the thread pool, and once a socket has seen one async call its synchronous calls
/// are emulated through the same engine. Measured on the 2-core development VM (4 KB ping-pong between two processes):
/// blocking calls 14 µs per exchange, a receive thread that wakes the caller 35-50 µs, async calls 60-140 µs. A dead
/// peer still shows at once: EOF or a reset ends the blocking read.</para> <para>NOTE: the reader runs the continuation
/// of whichever op waited for the frame (the rest of that op's algorithm), so it must never block on I/O: sends from a
/// link thread always go through the writer's queue.</para></summary>
internal sealed partial class LinkSocket
{
    public const uint Magic = 0x48504346; // "HPCF"
    public const int HeaderBytes = 24;

    /// <summary>Tag of the frame a rank sends before closing cleanly, so its EOF is a goodbye and not a
    /// death.</summary>
    public const long GoodbyeTag = long.MinValue;

    /// <summary>Tag of the frame a failing rank sends before closing: its payload is the reason, so peers learn the
    /// root cause ("rank 3 aborted: link to rank 1 failed ...") rather than just another closed socket.</summary>
    public const long AbortTag = long.MinValue + 1;

    /// <summary>Tag of the empty frame an idle link sends every <see cref="TcpOptions.HeartbeatInterval"/>, so a peer
    /// that is partitioned away or frozen (SIGSTOP: its kernel still ACKs, so TCP alone sees nothing) shows as
    /// silence. Not counted in the byte totals: those are the training's own traffic.</summary>
    public const long HeartbeatTag = long.MinValue + 2;
    private const int StageBytes = 64 * 1024;

    /// <summary>Payload remainders at least this large are read straight into their buffer, not through the
    /// stage.</summary>
    private const int DirectReadBytes = 16 * 1024;
    private const int MaxBatch = 64;

    [ThreadStatic]
    private static bool t_linkThread;

    /// <summary>True on a link's reader or writer thread, where nothing may block on socket I/O.</summary>
    public static bool OnLinkThread => t_linkThread;

    private readonly ILinkStream _stream;
    private readonly PeerLink _link;
    private readonly long _maxFrame;
    private readonly Thread _reader,
        _writer;
    private readonly object _gate = new();
    private readonly Queue<OutFrame> _queue = new();
    private bool _writing;
    private bool _stopped;
    private bool _peerSaidGoodbye;
    private string? _peerAbortReason;
    private long _bytesSent,
        _bytesReceived;
    private long _lastReceived = Stopwatch.GetTimestamp(),
        _lastSent = Stopwatch.GetTimestamp();

    /// <summary>Held by whichever thread reads the socket: the reader thread or a helping waiter.</summary>
    private readonly object _readRole = new();
    private readonly FrameReader _frames;
    private readonly byte[] _header = new byte[HeaderBytes];

    /// <summary>Threads in <see cref="Help"/> now, and when the last one left (Stopwatch ticks).</summary>
    private int _helpers;
    private long _lastHelpEnd;
    private readonly object _park = new();
    private static readonly TimeSpan HelperLinger = TimeSpan.FromMilliseconds(2);

    private readonly long _spinTicks;

    public LinkSocket(PeerLink link, int index, ILinkStream stream, long maxFrame, TimeSpan spin)
    {
        _spinTicks = (long)(spin.TotalSeconds * Stopwatch.Frequency);
        _link = link;
        _stream = stream;
        _maxFrame = maxFrame;
        _frames = new FrameReader(stream, StageBytes, DirectReadBytes);
        _reader = new Thread(ReadLoop, 256 * 1024) { IsBackground = true, Name = $"hpc-link{link.Peer}.{index}-rx" };
        _writer = new Thread(WriteLoop, 256 * 1024) { IsBackground = true, Name = $"hpc-link{link.Peer}.{index}-tx" };
    }

    public long BytesSent => Interlocked.Read(ref _bytesSent);
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>When a frame (of any kind) last arrived / last went out (Stopwatch ticks).</summary>
    public long LastReceived => Volatile.Read(ref _lastReceived);
    public long LastSent => Volatile.Read(ref _lastSent);

    public void Start()
    {
        _reader.Start();
        _writer.Start();
    }

    /// <summary>The reader: waits for bytes without taking them (so a thread waiting for its own op can read them
    /// itself, see <see cref="Help"/>), then takes the read role and delivers what is there.</summary>
    private void ReadLoop()
    {
        t_linkThread = true;
        try
        {
            while (true)
            {
                if (!_frames.HasBuffered)
                {
                    // While waiters read for themselves (and a moment after, as a loop of small ops comes back at
                    // once), stay off the socket, so an arriving frame wakes only the thread that waits for it.
                    if (
                        Volatile.Read(ref _helpers) > 0
                        || Stopwatch.GetElapsedTime(Volatile.Read(ref _lastHelpEnd)) < HelperLinger
                    )
                    {
                        lock (_park)
                            Monitor.Wait(_park, 1);
                        continue;
                    }
                    _stream.Poll(-1);
                }
                lock (_readRole)
                {
                    // A helper may have taken the bytes meanwhile; readable with nothing to read is the end of the
                    // stream.
                    if (!_frames.HasBuffered && !_stream.Poll(0))
                        continue;
                    do ReadOneFrame();
                    while (_frames.HasBuffered);
                }
            }
        }
        catch (Exception e)
        {
            _link.OnSocketFailed(
                e is SocketException or ObjectDisposedException && _link.Closing
                    ? new IOException("the link was closed")
                    : e
            );
        }
    }

    /// <summary>Reads frames on the calling thread, delivering each (so the waiting op's next step runs right here),
    /// while <paramref name="keepWaiting"/> holds and the deadline has not passed. Returns at once when the reader
    /// thread holds the read role. A latency-bound op then completes without any thread hand-over: one wake-up
    /// (this thread's) per message instead of two.</summary>
    public void Help(Func<bool> keepWaiting, DateTime deadline)
    {
        Interlocked.Increment(ref _helpers);
        if (!Monitor.TryEnter(_readRole))
        {
            Interlocked.Decrement(ref _helpers);
            return;
        }
        try
        {
            // First poll without sleeping, yielding the core between polls (as MPI's progress loop does): a reply
            // due within microseconds then costs no wake-up. Only where each rank has a core of its own (the spin
            // budget is 0 when ranks outnumber cores: there a spinning rank would hold up the one it waits for).
            long spinUntil = Stopwatch.GetTimestamp() + _spinTicks;
            while (keepWaiting())
            {
                if (!_frames.HasBuffered)
                {
                    if (Stopwatch.GetTimestamp() < spinUntil)
                    {
                        if (!_stream.Poll(0))
                        {
                            Thread.Yield();
                            continue;
                        }
                    }
                    else
                    {
                        long slice = (long)Math.Min((deadline - DateTime.UtcNow).TotalMicroseconds, 20_000);
                        if (slice <= 0)
                            break;
                        if (!_stream.Poll((int)slice))
                            continue;
                    }
                }
                ReadOneFrame();
                spinUntil = Stopwatch.GetTimestamp() + _spinTicks;
            }
            // Leave no whole frame in the stage: the reader thread only wakes for bytes still in the socket.
            while (_frames.HasBuffered)
                ReadOneFrame();
        }
        catch (Exception e)
        {
            _link.OnSocketFailed(
                e is SocketException or ObjectDisposedException && _link.Closing
                    ? new IOException("the link was closed")
                    : e
            );
        }
        finally
        {
            Volatile.Write(ref _lastHelpEnd, Stopwatch.GetTimestamp());
            Interlocked.Decrement(ref _helpers);
            Monitor.Exit(_readRole);
        }
    }

    /// <summary>Reads one whole frame and hands it on (under the read role).</summary>
    private void ReadOneFrame()
    {
        var h = _header;
        if (!_frames.ReadExactly(h))
            throw EndOfStream();
        if (BinaryPrimitives.ReadUInt32LittleEndian(h) != Magic)
            throw new InvalidDataException($"malformed frame from rank {_link.Peer} (bad magic)");
        uint seq = BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(4));
        long tag = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(8));
        long len = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(16));
        if (len < 0 || len > _maxFrame)
            throw new InvalidDataException(
                $"frame of {len} bytes from rank {_link.Peer} exceeds the {_maxFrame}-byte limit"
            );
        Volatile.Write(ref _lastReceived, Stopwatch.GetTimestamp());
        if (tag == HeartbeatTag)
        {
            if (len != 0)
                throw new InvalidDataException($"malformed heartbeat from rank {_link.Peer} ({len} payload bytes)");
            return;
        }
        int length = (int)len;
        if (
            tag != AbortTag
            && tag != GoodbyeTag
            && _link.TryTakeDestination(seq, tag, length, out var waiter, out var into)
        )
        {
            // The receiver posted where this payload goes: read it straight there.
            try
            {
                if (!_frames.ReadExactly(into.Span))
                    throw EndOfStream();
            }
            catch (Exception e)
            {
                ThreadPool.UnsafeQueueUserWorkItem(w => w.TrySetException(e), waiter!, false);
                throw;
            }
            Interlocked.Add(ref _bytesReceived, HeaderBytes + length);
            _link.OnFramePlaced(seq, waiter!, length);
            return;
        }
        var payload = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            if (!_frames.ReadExactly(payload.AsSpan(0, length)))
                throw EndOfStream();
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(payload);
            throw;
        }
        Interlocked.Add(ref _bytesReceived, HeaderBytes + length);
        if (tag == AbortTag)
        {
            _peerAbortReason = System.Text.Encoding.UTF8.GetString(payload, 0, length);
            ArrayPool<byte>.Shared.Return(payload);
        }
        else if (tag == GoodbyeTag)
        {
            _peerSaidGoodbye = true;
            ArrayPool<byte>.Shared.Return(payload);
        }
        else
            _link.OnFrame(seq, tag, new Incoming(payload, length));
    }

    private IOException EndOfStream() =>
        _peerAbortReason != null ? new IOException($"rank {_link.Peer} aborted: {_peerAbortReason}")
        : _peerSaidGoodbye ? new PeerLeftException($"rank {_link.Peer} left the group")
        : new EndOfStreamException($"rank {_link.Peer} closed the connection");

    /// <summary>Stops both threads: the writer finishes its current write, blocked calls return at the
    /// shutdown.</summary>
    public void Shutdown()
    {
        lock (_gate)
        {
            _stopped = true;
            Monitor.PulseAll(_gate);
        }
        _stream.Shutdown();
    }

    /// <summary>Waits for the threads to end (not from one of them), then closes the socket.</summary>
    public void Close(TimeSpan wait)
    {
        Shutdown();
        if (Thread.CurrentThread != _reader)
            _reader.Join(wait);
        if (Thread.CurrentThread != _writer)
            _writer.Join(wait);
        _stream.Dispose();
    }
}
