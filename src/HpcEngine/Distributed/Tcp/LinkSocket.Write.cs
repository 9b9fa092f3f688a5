using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace HpcEngine.Distributed.Tcp;

/// <summary>A frame waiting to be written: <see cref="Done"/> (null for frames sent by the caller itself) completes
/// once the payload is on the socket, so its owner may reuse the memory.</summary>
internal readonly record struct OutFrame(long Tag, uint Seq, ReadOnlyMemory<byte> Payload, TaskCompletionSource? Done);

/// <summary>The send side of a <see cref="LinkSocket"/>: a frame written by the sending thread when the socket is idle,
/// else queued for the writer thread, which gathers every queued frame into one <c>sendmsg</c>.</summary>
internal sealed partial class LinkSocket
{
    /// <summary>Takes the socket's send side for one frame written by the calling thread; false when the writer has
    /// frames queued or is writing (then the frame must be queued behind them).</summary>
    public bool TryClaim()
    {
        lock (_gate)
        {
            if (_stopped || _writing || _queue.Count > 0)
                return false;
            _writing = true;
            return true;
        }
    }

    /// <summary>Whether <see cref="TryWriteNow"/> can ever succeed (a shared-memory stream).</summary>
    public bool WritesWithoutBlocking => _stream.Transport == "shm";

    /// <summary>Writes a frame of any size on the calling thread (a link thread too) when nothing is queued before it
    /// and the stream takes it without blocking — a shared-memory ring with room; false otherwise (queue it then).
    /// The thread hand-over to the writer is what a same-host message would otherwise cost most.</summary>
    public bool TryWriteNow(long tag, uint seq, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = stackalloc byte[HeaderBytes];
        WriteHeader(header, tag, seq, payload.Length);
        lock (_gate)
        {
            if (_stopped || _writing || _queue.Count > 0 || !_stream.TrySendNow(header, payload))
                return false;
        }
        Interlocked.Add(ref _bytesSent, HeaderBytes + payload.Length);
        Volatile.Write(ref _lastSent, Stopwatch.GetTimestamp());
        return true;
    }

    /// <summary>Writes one small frame on the calling thread, after a successful <see cref="TryClaim"/>.</summary>
    public void SendClaimed(long tag, uint seq, ReadOnlySpan<byte> payload)
    {
        var buf = ArrayPool<byte>.Shared.Rent(HeaderBytes + payload.Length);
        try
        {
            WriteHeader(buf, tag, seq, payload.Length);
            payload.CopyTo(buf.AsSpan(HeaderBytes));
            int total = HeaderBytes + payload.Length;
            _stream.Send(buf.AsSpan(0, total));
            Interlocked.Add(ref _bytesSent, total);
            Volatile.Write(ref _lastSent, Stopwatch.GetTimestamp());
        }
        catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
        {
            _link.OnSocketFailed(e);
            throw _link.Failed();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buf);
            lock (_gate)
            {
                _writing = false;
                if (_queue.Count > 0)
                    Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>Queues a frame for the writer thread.</summary>
    public void Enqueue(OutFrame frame)
    {
        lock (_gate)
        {
            if (_stopped)
            {
                frame.Done?.TrySetException(_link.Failed());
                return;
            }
            _queue.Enqueue(frame);
            if (!_writing)
                Monitor.PulseAll(_gate);
        }
    }

    private static void WriteHeader(Span<byte> h, long tag, uint seq, int length)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(h, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(h[4..], seq);
        BinaryPrimitives.WriteInt64LittleEndian(h[8..], tag);
        BinaryPrimitives.WriteInt64LittleEndian(h[16..], length);
    }

    private void WriteLoop()
    {
        t_linkThread = true;
        var batch = new List<OutFrame>(MaxBatch);
        var segments = new List<ArraySegment<byte>>(2 * MaxBatch);
        var headers = new byte[HeaderBytes * MaxBatch];
        try
        {
            while (true)
            {
                lock (_gate)
                {
                    while (!_stopped && (_queue.Count == 0 || _writing))
                        Monitor.Wait(_gate);
                    if (_stopped)
                        break;
                    _writing = true;
                    while (_queue.Count > 0 && batch.Count < MaxBatch)
                        batch.Add(_queue.Dequeue());
                }
                long bytes = 0,
                    heartbeats = 0;
                for (int i = 0; i < batch.Count; i++)
                {
                    var f = batch[i];
                    var h = new ArraySegment<byte>(headers, i * HeaderBytes, HeaderBytes);
                    WriteHeader(h, f.Tag, f.Seq, f.Payload.Length);
                    segments.Add(h);
                    if (f.Payload.Length > 0)
                        segments.Add(AsSegment(f.Payload));
                    bytes += HeaderBytes + f.Payload.Length;
                    if (f.Tag == HeartbeatTag)
                        heartbeats += HeaderBytes;
                }
                var pause = _link.Throttle(bytes);
                if (pause > TimeSpan.Zero)
                    Thread.Sleep(pause);
                _stream.Send(segments);
                Interlocked.Add(ref _bytesSent, bytes - heartbeats);
                Volatile.Write(ref _lastSent, Stopwatch.GetTimestamp());
                lock (_gate)
                    _writing = false;
                foreach (var f in batch)
                    f.Done?.TrySetResult();
                batch.Clear();
                segments.Clear();
            }
        }
        catch (Exception e)
        {
            _link.OnSocketFailed(e);
        }
        // Whatever was not written fails now, or its sender would wait for its op's timeout.
        var failed = _link.Failed();
        foreach (var f in batch)
            f.Done?.TrySetException(failed);
        lock (_gate)
        {
            _stopped = true;
            while (_queue.TryDequeue(out var f))
                f.Done?.TrySetException(failed);
        }
    }

    private static ArraySegment<byte> AsSegment(ReadOnlyMemory<byte> m) =>
        MemoryMarshal.TryGetArray(m, out var seg) ? seg : new ArraySegment<byte>(m.ToArray());
}
