using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace HpcEngine.Distributed.Tcp;

/// <summary>A frame waiting to be written: <see cref="Done"/> (null for frames sent by the caller itself) completes once
/// the payload is on the socket, so its owner may reuse the memory.</summary>
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
            if (_stopped || _writing || _queue.Count > 0) return false;
            _writing = true;
            return true;
        }
    }

    /// <summary>Writes one small frame on the calling thread, after a successful <see cref="TryClaim"/>.</summary>
    public void SendClaimed(long tag, uint seq, ReadOnlySpan<byte> payload)
    {
        var buf = ArrayPool<byte>.Shared.Rent(HeaderBytes + payload.Length);
        try
        {
            WriteHeader(buf, tag, seq, payload.Length);
            payload.CopyTo(buf.AsSpan(HeaderBytes));
            int total = HeaderBytes + payload.Length, sent = 0;
            while (sent < total) sent += _socket.Send(buf, sent, total - sent, SocketFlags.None);
            Interlocked.Add(ref _bytesSent, total);
            Volatile.Write(ref _lastSent, Stopwatch.GetTimestamp());
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
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
                if (_queue.Count > 0) Monitor.PulseAll(_gate);
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
            if (!_writing) Monitor.PulseAll(_gate);
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
                    while (!_stopped && (_queue.Count == 0 || _writing)) Monitor.Wait(_gate);
                    if (_stopped) break;
                    _writing = true;
                    while (_queue.Count > 0 && batch.Count < MaxBatch) batch.Add(_queue.Dequeue());
                }
                long bytes = 0, heartbeats = 0;
                for (int i = 0; i < batch.Count; i++)
                {
                    var f = batch[i];
                    var h = new ArraySegment<byte>(headers, i * HeaderBytes, HeaderBytes);
                    WriteHeader(h, f.Tag, f.Seq, f.Payload.Length);
                    segments.Add(h);
                    if (f.Payload.Length > 0) segments.Add(AsSegment(f.Payload));
                    bytes += HeaderBytes + f.Payload.Length;
                    if (f.Tag == HeartbeatTag) heartbeats += HeaderBytes;
                }
                var pause = _link.Throttle(bytes);
                if (pause > TimeSpan.Zero) Thread.Sleep(pause);
                SendAll(segments);
                Interlocked.Add(ref _bytesSent, bytes - heartbeats);
                Volatile.Write(ref _lastSent, Stopwatch.GetTimestamp());
                lock (_gate) _writing = false;
                foreach (var f in batch) f.Done?.TrySetResult();
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
        foreach (var f in batch) f.Done?.TrySetException(failed);
        lock (_gate)
        {
            _stopped = true;
            while (_queue.TryDequeue(out var f)) f.Done?.TrySetException(failed);
        }
    }

    private static ArraySegment<byte> AsSegment(ReadOnlyMemory<byte> m) =>
        MemoryMarshal.TryGetArray(m, out var seg) ? seg : new ArraySegment<byte>(m.ToArray());

    /// <summary>One gathered write; loops over partial sends (a blocking sendmsg may return early on a signal).</summary>
    private void SendAll(List<ArraySegment<byte>> segments)
    {
        long total = 0;
        foreach (var s in segments) total += s.Count;
        long sent = _socket.Send(segments);
        while (sent < total)
        {
            // Drop what went out and send the rest.
            long skip = sent;
            int i = 0;
            while (skip >= segments[i].Count) { skip -= segments[i].Count; i++; }
            segments.RemoveRange(0, i);
            segments[0] = segments[0].Slice((int)skip);
            total -= sent;
            sent = _socket.Send(segments);
        }
    }
}
