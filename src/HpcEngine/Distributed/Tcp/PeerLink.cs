using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Channels;

namespace HpcEngine.Distributed.Tcp;

/// <summary>The peer closed its end after saying goodbye: it left, it did not crash.</summary>
internal sealed class PeerLeftException(string message) : IOException(message);

/// <summary>A received message: a pooled buffer the consumer returns with Dispose. Dispose is idempotent: returning
/// the same array to the pool twice would hand it to two later receivers at once.</summary>
internal sealed class Incoming(byte[] buffer, int length) : IDisposable
{
    private int _returned;
    public ReadOnlySpan<byte> Span => buffer.AsSpan(0, length);
    public int Length => length;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _returned, 1) == 0) ArrayPool<byte>.Shared.Return(buffer);
    }
}

/// <summary>The connection to one peer. Frames are <c>[u32 magic][u32 reserved][i64 tag][i64 length][payload]</c>.
/// A receive loop reads the socket through a PipeReader and copies each payload, as it arrives, into a pooled
/// buffer delivered to the channel of its tag (so several ops can be in flight, each reading its own frames in
/// order). A send loop drains a bounded queue into a PipeWriter: the bounded queue and FlushAsync are the
/// backpressure. A length above the cap, a bad magic, EOF or a socket error fails the link: every pending and later
/// receive on it throws, naming the peer.</summary>
internal sealed class PeerLink : IAsyncDisposable
{
    private const uint Magic = 0x48504346; // "HPCF"
    private const int HeaderBytes = 24;
    /// <summary>Payloads at least this large bypass the pipes' buffers (copied once less on each side).</summary>
    private const int DirectBytes = 64 * 1024;
    /// <summary>Tag of the frame a rank sends before closing cleanly, so its EOF is a goodbye and not a death.</summary>
    private const long GoodbyeTag = long.MinValue;
    /// <summary>Tag of the frame a failing rank sends before closing: its payload is the reason, so peers learn the
    /// root cause ("rank 3 aborted: link to rank 1 failed ...") rather than just another closed socket.</summary>
    private const long AbortTag = long.MinValue + 1;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly Channel<(long Tag, ReadOnlyMemory<byte> Payload, TaskCompletionSource Done)> _out =
        Channel.CreateBounded<(long, ReadOnlyMemory<byte>, TaskCompletionSource)>(new BoundedChannelOptions(64) { SingleReader = true });
    private readonly ConcurrentDictionary<long, Channel<Incoming>> _inbox = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly long _maxFrame;
    private readonly NetworkEmulation? _emu;
    private readonly Action<PeerLink, Exception> _onFailure;
    private readonly Task _recvLoop, _sendLoop;
    private Exception? _failure;
    private long _busyUntilTicks;
    private volatile bool _peerSaidGoodbye;
    private volatile string? _peerAbortReason;

    public int Peer { get; }
    public long BytesSent;
    public long BytesReceived;

    public PeerLink(int peer, Socket socket, long maxFrame, NetworkEmulation? emulation, Action<PeerLink, Exception> onFailure)
    {
        Peer = peer;
        _socket = socket;
        socket.SendBufferSize = 4 << 20;
        socket.ReceiveBufferSize = 4 << 20;
        var stream = new NetworkStream(socket, ownsSocket: false);
        _stream = stream;
        _reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 1 << 16, minimumReadSize: 1 << 14, leaveOpen: true));
        _writer = PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 1 << 16, leaveOpen: true));
        _maxFrame = maxFrame;
        _emu = emulation;
        _onFailure = onFailure;
        _recvLoop = Task.Run(ReceiveLoop);
        _sendLoop = Task.Run(SendLoop);
    }

    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>Queues a frame; the task completes once the payload has been copied out (the caller may reuse it).</summary>
    public async Task SendAsync(long tag, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        ThrowIfFailed();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await _out.Writer.WriteAsync((tag, payload, done), ct).ConfigureAwait(false);
        using (ct.Register(() => done.TrySetCanceled(ct)))
            await done.Task.ConfigureAwait(false);
    }

    /// <summary>The next frame of <paramref name="tag"/> from this peer.</summary>
    public async Task<Incoming> ReceiveAsync(long tag, CancellationToken ct)
    {
        // Frames that arrived before the link went down stay readable; only a wait for more fails.
        if (!_inbox.TryGetValue(tag, out var ch))
        {
            ThrowIfFailed();
            ch = _inbox.GetOrAdd(tag, _ => Channel.CreateUnbounded<Incoming>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true }));
            if (Volatile.Read(ref _failure) is { } f) ch.Writer.TryComplete(f);
        }
        try
        {
            return await ch.Reader.ReadAsync(ct).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw Failed();
        }
    }

    /// <summary>Forgets a finished op's channel.</summary>
    public void Release(long tag)
    {
        if (_inbox.TryRemove(tag, out var ch))
            while (ch.Reader.TryRead(out var m)) m.Dispose();
    }

    private void ThrowIfFailed()
    {
        if (Volatile.Read(ref _failure) != null) throw Failed();
    }

    private IOException Failed() => new($"the link to rank {Peer} is down: {_failure?.Message}", _failure);

    private async Task ReceiveLoop()
    {
        byte[]? payload = null;
        var h = new byte[HeaderBytes];
        long tag = 0;
        int length = 0, filled = 0;
        bool inPayload = false;
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(_stop.Token).ConfigureAwait(false);
                var buf = result.Buffer;
                while (true)
                {
                    if (!inPayload)
                    {
                        if (buf.Length < HeaderBytes) break;
                        buf.Slice(0, HeaderBytes).CopyTo(h);
                        buf = buf.Slice(HeaderBytes);
                        if (BinaryPrimitives.ReadUInt32LittleEndian(h) != Magic)
                            throw new InvalidDataException($"malformed frame from rank {Peer} (bad magic)");
                        tag = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(8));
                        long len = BinaryPrimitives.ReadInt64LittleEndian(h.AsSpan(16));
                        if (len < 0 || len > _maxFrame)
                            throw new InvalidDataException($"frame of {len} bytes from rank {Peer} exceeds the {_maxFrame}-byte limit");
                        length = (int)len;
                        payload = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
                        filled = 0;
                        inPayload = true;
                    }
                    int take = (int)Math.Min(buf.Length, length - filled);
                    buf.Slice(0, take).CopyTo(payload.AsSpan(filled));
                    buf = buf.Slice(take);
                    filled += take;
                    if (filled < length && length - filled >= DirectBytes && buf.Length == 0)
                    {
                        // Large payload: the pipe's buffer is drained, so read the rest straight from the socket into
                        // the payload buffer (one copy fewer than going through the pipe's segments).
                        _reader.AdvanceTo(buf.Start, buf.End);
                        await _stream.ReadExactlyAsync(payload.AsMemory(filled, length - filled), _stop.Token).ConfigureAwait(false);
                        filled = length;
                        inPayload = false;
                        Interlocked.Add(ref BytesReceived, length + HeaderBytes);
                        await DeliverAsync(tag, new Incoming(payload!, length)).ConfigureAwait(false);
                        payload = null;
                        goto nextRead;
                    }
                    if (filled < length) break;
                    inPayload = false;
                    Interlocked.Add(ref BytesReceived, length + HeaderBytes);
                    if (tag == AbortTag)
                    {
                        _peerAbortReason = System.Text.Encoding.UTF8.GetString(payload!, 0, length);
                        ArrayPool<byte>.Shared.Return(payload!);
                        payload = null;
                        continue;
                    }
                    if (tag == GoodbyeTag)
                    {
                        ArrayPool<byte>.Shared.Return(payload!);
                        _peerSaidGoodbye = true;
                        payload = null;
                        continue;
                    }
                    await DeliverAsync(tag, new Incoming(payload!, length)).ConfigureAwait(false);
                    payload = null;
                }
                _reader.AdvanceTo(buf.Start, buf.End);
                if (result.IsCompleted)
                    throw _peerAbortReason != null ? new IOException($"rank {Peer} aborted: {_peerAbortReason}")
                        : _peerSaidGoodbye ? new PeerLeftException($"rank {Peer} left the group")
                        : new EndOfStreamException($"rank {Peer} closed the connection");
                continue;
            nextRead:;
            }
        }
        catch (Exception e)
        {
            if (payload != null) ArrayPool<byte>.Shared.Return(payload);
            Fail(e is OperationCanceledException ? new IOException("the link was closed") : e);
        }
    }

    private async ValueTask DeliverAsync(long tag, Incoming m)
    {
        if (_emu is { Latency.Ticks: > 0 })
            await Task.Delay(_emu.Latency, _stop.Token).ConfigureAwait(false);
        var ch = _inbox.GetOrAdd(tag, _ => Channel.CreateUnbounded<Incoming>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true }));
        if (!ch.Writer.TryWrite(m)) m.Dispose();
    }

    private async Task SendLoop()
    {
        TaskCompletionSource? inFlight = null;
        try
        {
            await foreach (var (tag, payload, done) in _out.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                inFlight = done;
                if (done.Task.IsCanceled) continue;
                if (_emu != null && !double.IsPositiveInfinity(_emu.BytesPerSecond)) await Throttle(payload.Length + HeaderBytes).ConfigureAwait(false);
                var h = _writer.GetSpan(HeaderBytes);
                BinaryPrimitives.WriteUInt32LittleEndian(h, Magic);
                BinaryPrimitives.WriteUInt32LittleEndian(h[4..], 0);
                BinaryPrimitives.WriteInt64LittleEndian(h[8..], tag);
                BinaryPrimitives.WriteInt64LittleEndian(h[16..], payload.Length);
                _writer.Advance(HeaderBytes);
                if (payload.Length >= DirectBytes)
                {
                    // Large payload: flush the header (and anything before it), then hand the payload to the socket
                    // directly instead of copying it through the pipe's buffers.
                    await _writer.FlushAsync(_stop.Token).ConfigureAwait(false);
                    await _stream.WriteAsync(payload, _stop.Token).ConfigureAwait(false);
                    Interlocked.Add(ref BytesSent, payload.Length + HeaderBytes);
                    done.TrySetResult();
                    continue;
                }
                _writer.Write(payload.Span);
                Interlocked.Add(ref BytesSent, payload.Length + HeaderBytes);
                // A goodbye or abort completes only once it (and everything before it) is on the socket.
                bool final = tag is GoodbyeTag or AbortTag;
                if (!final) done.TrySetResult();
                // Coalesce: flush only when nothing else is queued.
                if (final || !_out.Reader.TryPeek(out _))
                {
                    var f = await _writer.FlushAsync(_stop.Token).ConfigureAwait(false);
                    if (f.IsCompleted) throw new EndOfStreamException($"rank {Peer} stopped reading");
                }
                if (final) done.TrySetResult();
            }
        }
        catch (Exception e)
        {
            Fail(e is OperationCanceledException ? new IOException("the link was closed") : e);
            // The frame being written when the link broke is not in the queue any more: fail it here, or its sender
            // would wait for its op's timeout.
            inFlight?.TrySetException(Failed());
        }
    }

    /// <summary>Pacing at the emulated rate: a frame leaves when its own transmission would have finished on a link
    /// of that bandwidth (after the frames before it).</summary>
    private async Task Throttle(int bytes)
    {
        long now = DateTime.UtcNow.Ticks;
        long start = Math.Max(now, _busyUntilTicks);
        _busyUntilTicks = start + (long)(bytes / _emu!.BytesPerSecond * TimeSpan.TicksPerSecond);
        if (_busyUntilTicks > now) await Task.Delay(TimeSpan.FromTicks(_busyUntilTicks - now), _stop.Token).ConfigureAwait(false);
    }

    private void Fail(Exception e)
    {
        if (Interlocked.CompareExchange(ref _failure, e, null) != null) return;
        foreach (var ch in _inbox.Values) ch.Writer.TryComplete(e);
        _out.Writer.TryComplete(e);
        while (_out.Reader.TryRead(out var o)) o.Done.TrySetException(Failed());
        // A peer that left cleanly fails only what still waits on it; anything else takes the group down.
        if (e is not PeerLeftException && !_closing) _onFailure(this, e);
    }

    private volatile bool _closing;

    /// <summary>Says goodbye (so the peer does not take our EOF for a crash), then closes.</summary>
    public async Task CloseGracefullyAsync()
    {
        _closing = true;
        try
        {
            if (Failure == null)
                await SendAsync(GoodbyeTag, ReadOnlyMemory<byte>.Empty, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or TimeoutException or InvalidOperationException or ObjectDisposedException or ChannelClosedException)
        {
            // the peer is already gone; nothing to say goodbye to
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
            var why = System.Text.Encoding.UTF8.GetBytes(reason.Message.Length > 2000 ? reason.Message[..2000] : reason.Message);
            // Best effort: whether it goes out or not, the abort goes on.
            if (_out.Writer.TryWrite((AbortTag, why, done))) Task.WhenAny(done.Task, Task.Delay(300)).Wait();
        }
        try { _socket.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        Fail(reason);
        _stop.Cancel();
    }

    public async ValueTask DisposeAsync()
    {
        _closing = true;
        Abort(new IOException("the process group was closed"));
        try { await Task.WhenAll(_recvLoop, _sendLoop).WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false); } catch (Exception) { }
        _socket.Dispose();
        _stop.Dispose();
    }
}
