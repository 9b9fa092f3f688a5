using System.Buffers.Binary;

namespace HpcEngine.Distributed.Shm;

/// <summary>One side of a same-host link's small-op path: messages of a <see cref="HeaderBytes"/>-byte header and a
/// payload on the segment's exchange rings, each starting on a cache line, written by the sending op's own thread and
/// read — reduced — by the receiving op's thread straight out of the ring. No frame, tag lookup, task or thread
/// hand-over sits between two ranks' ops, so a small allreduce on one host costs what MPI's shared-memory path costs:
/// a copy into shared memory and a reduce out of it. One group (the one that owns the links) uses it, one op at a
/// time, so each ring keeps a single producer and a single consumer and messages are taken in the order they were
/// posted. Waiting (spin, sleep, failure checks) is the caller's: see TcpProcessGroup.Exchange.cs.</summary>
internal sealed class ShmExchange
{
    /// <summary>Bytes of a message's header (the op's identity: see TcpProcessGroup.Exchange.cs).</summary>
    public const int HeaderBytes = 32;

    /// <summary>Every message starts on a cache line of its own, so a payload after the header is element-aligned
    /// and a piece that wraps at the ring's end splits on an element boundary.</summary>
    private const int Alignment = 64;

    /// <summary>The largest payload: two whole messages fit the ring, the one being read and the next one being
    /// written.</summary>
    public const int MaxPayload = (int)(ShmSegment.ExchangeRingBytes / 2) - Alignment;

    private readonly ShmSegment _segment;
    private readonly ShmRing _out,
        _in;
    private long _bytesSent,
        _bytesReceived;

    /// <param name="segment">the link's segment (the link stream owns it)</param>
    /// <param name="creator">whether this rank created it (it writes exchange ring 0)</param>
    public ShmExchange(ShmSegment segment, bool creator)
    {
        _segment = segment;
        _out = creator ? segment.ExchangeCreatorToOpener : segment.ExchangeOpenerToCreator;
        _in = creator ? segment.ExchangeOpenerToCreator : segment.ExchangeCreatorToOpener;
    }

    /// <summary>Header and payload bytes posted / taken so far.</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);
    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>The peer has closed its side (it shut its link down: left, aborted, or is disposing).</summary>
    public bool PeerClosed => _in.ProducerClosed || _out.ConsumerClosed;

    private static int Span(int payload) => (HeaderBytes + payload + Alignment - 1) & ~(Alignment - 1);

    /// <summary>Posts one message when the ring has room for it now; false (nothing written) otherwise.</summary>
    public bool TryPost(in ExchangeHeader header, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > MaxPayload || header.Bytes != payload.Length)
            throw new ArgumentException(
                $"internal: an exchange payload is at most {MaxPayload} bytes, as its header says"
            );
        Span<byte> h = stackalloc byte[HeaderBytes];
        header.Write(h);
        _segment.Enter();
        try
        {
            if (!_out.TryWriteAll(h, payload, Alignment))
                return false;
        }
        finally
        {
            _segment.Exit();
        }
        Interlocked.Add(ref _bytesSent, HeaderBytes + payload.Length);
        return true;
    }

    /// <summary>The next message, once it has arrived (a message is published whole): its header, and its payload
    /// as one piece or two (wrapping at the ring's end), valid until <see cref="Release"/>, which must follow — it
    /// also ends the hold on the mapping taken here.</summary>
    public bool TryPeek(out ExchangeHeader header, out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second)
    {
        _segment.Enter();
        if (!_in.TryPeek(HeaderBytes, out var h, out _))
        {
            _segment.Exit();
            header = default;
            first = second = default;
            return false;
        }
        header = ExchangeHeader.Read(h);
        if (
            header.Bytes < 0
            || header.Bytes > MaxPayload
            || !_in.TryPeek(HeaderBytes + header.Bytes, out var a, out var b)
        )
        {
            _segment.Exit();
            throw new InvalidDataException($"malformed exchange message ({header.Bytes} payload bytes)");
        }
        // The header never wraps (messages start on a cache line); the payload may.
        if (a.Length > HeaderBytes)
        {
            first = a[HeaderBytes..];
            second = b;
        }
        else
        {
            first = b;
            second = default;
        }
        return true;
    }

    /// <summary>Frees the message <see cref="TryPeek"/> returned.</summary>
    public void Release(in ExchangeHeader header)
    {
        try
        {
            _in.Skip(Span(header.Bytes));
        }
        finally
        {
            _segment.Exit();
        }
        Interlocked.Add(ref _bytesReceived, HeaderBytes + header.Bytes);
    }

    /// <summary>Whether a message of <paramref name="payload"/> bytes could be posted now (<paramref name="post"/>),
    /// or a message has arrived (no side effects).</summary>
    public bool Ready(bool post, int payload) => post ? _out.Free >= Span(payload) : _in.Available >= HeaderBytes;

    /// <summary>Sleeps on the ring's futex for at most <paramref name="microseconds"/>, until the peer may have made
    /// <see cref="Ready"/> true.</summary>
    public void Sleep(bool post, int payload, long microseconds)
    {
        _segment.Enter();
        try
        {
            var ring = post ? _out : _in;
            ring.Sleep(reader: !post, () => Ready(post, payload) || PeerClosed, microseconds);
        }
        finally
        {
            _segment.Exit();
        }
    }

    /// <summary>Closes this side and wakes both sides' sleepers (the link is shutting down).</summary>
    public void Shutdown()
    {
        _out.CloseProducer();
        _in.CloseConsumer();
        _in.WakeEveryone();
        _out.WakeEveryone();
    }
}

/// <summary>What an exchange message says about the op that sent it: its sequence number, element count, the
/// payload's bytes and its piece number (a long op goes in pieces), the op's kind, dtype and reduction — enough to
/// name both sides of a desync.</summary>
internal readonly record struct ExchangeHeader(
    long Seq,
    long Count,
    int Bytes,
    int Piece,
    byte Kind,
    byte DType,
    byte Reduce
)
{
    public void Write(Span<byte> h)
    {
        BinaryPrimitives.WriteInt64LittleEndian(h, Seq);
        BinaryPrimitives.WriteInt64LittleEndian(h[8..], Count);
        BinaryPrimitives.WriteInt32LittleEndian(h[16..], Bytes);
        BinaryPrimitives.WriteInt32LittleEndian(h[20..], Piece);
        h[24] = Kind;
        h[25] = DType;
        h[26] = Reduce;
    }

    public static ExchangeHeader Read(ReadOnlySpan<byte> h) =>
        new(
            BinaryPrimitives.ReadInt64LittleEndian(h),
            BinaryPrimitives.ReadInt64LittleEndian(h[8..]),
            BinaryPrimitives.ReadInt32LittleEndian(h[16..]),
            BinaryPrimitives.ReadInt32LittleEndian(h[20..]),
            h[24],
            h[25],
            h[26]
        );
}
