namespace HpcEngine.Distributed.Shm;

/// <summary>One direction of a shared-memory link: a single-producer single-consumer byte ring in a mapping both
/// processes see. Head and tail are running byte totals (never wrapped), each written by one side only, so the only
/// synchronisation is a release store of one's own counter and an acquire load of the other's (x64 and arm64 give
/// that with Volatile). A side about to sleep announces itself in a waiter count, and the other side wakes it through
/// a futex sequence word after it moved its counter; both use full fences between "publish" and "check the other",
/// the Dekker pattern, so a wake-up can never be missed.</summary>
internal sealed unsafe class ShmRing
{
    // The control block: every field the producer writes on other cache lines than the consumer's (no false sharing).
    private const int HeadOffset = 0,
        DataSeqOffset = 8,
        ProducerClosedOffset = 12;
    private const int TailOffset = 128,
        SpaceSeqOffset = 136,
        ConsumerClosedOffset = 140;
    private const int ReadersWaitingOffset = 256,
        WritersWaitingOffset = 384;

    /// <summary>Bytes of one ring's control block.</summary>
    public const int ControlBytes = 512;

    private readonly byte* _control;
    private readonly byte* _data;
    private readonly long _capacity,
        _mask;

    /// <param name="control">its control block (<see cref="ControlBytes"/>, zeroed at creation)</param>
    /// <param name="data">its data area</param>
    /// <param name="capacity">bytes of the data area, a power of two</param>
    public ShmRing(byte* control, byte* data, long capacity)
    {
        if (capacity <= 0 || (capacity & (capacity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"ring capacity {capacity} is not a power of two");
        _control = control;
        _data = data;
        _capacity = capacity;
        _mask = capacity - 1;
    }

    private ref long Head => ref *(long*)(_control + HeadOffset);
    private ref long Tail => ref *(long*)(_control + TailOffset);

    /// <summary>The futex word readers sleep on; the producer bumps it when it wakes them.</summary>
    public int* DataSeq => (int*)(_control + DataSeqOffset);

    /// <summary>The futex word writers sleep on; the consumer bumps it when it wakes them.</summary>
    public int* SpaceSeq => (int*)(_control + SpaceSeqOffset);
    private ref int ReadersWaiting => ref *(int*)(_control + ReadersWaitingOffset);
    private ref int WritersWaiting => ref *(int*)(_control + WritersWaitingOffset);
    private ref int ProducerClosedFlag => ref *(int*)(_control + ProducerClosedOffset);
    private ref int ConsumerClosedFlag => ref *(int*)(_control + ConsumerClosedOffset);

    /// <summary>Bytes written and not yet read.</summary>
    public long Available => Volatile.Read(ref Head) - Volatile.Read(ref Tail);

    /// <summary>The producer has ended the stream (what is in the ring stays readable).</summary>
    public bool ProducerClosed => Volatile.Read(ref ProducerClosedFlag) != 0;

    /// <summary>The consumer has gone: further writes are pointless.</summary>
    public bool ConsumerClosed => Volatile.Read(ref ConsumerClosedFlag) != 0;

    /// <summary>Producer: copies as much of <paramref name="data"/> as fits; returns the count (0 when full).</summary>
    public int TryWrite(ReadOnlySpan<byte> data)
    {
        long head = Head; // only this side writes it
        long free = _capacity - (head - Volatile.Read(ref Tail));
        int n = (int)Math.Min(free, data.Length);
        if (n == 0)
            return 0;
        Copy(head, data[..n]);
        Volatile.Write(ref Head, head + n);
        WakeIfWaiting(ref ReadersWaiting, DataSeq);
        return n;
    }

    /// <summary>Producer: copies <paramref name="first"/> and <paramref name="second"/> and publishes them together
    /// when both fit now; false (nothing written) otherwise. With <paramref name="align"/> (a power of two) the head
    /// moves on to the next multiple of it, so every message starts aligned (the gap is left unwritten).</summary>
    public bool TryWriteAll(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second, int align = 1)
    {
        long head = Head;
        long total = ((long)first.Length + second.Length + align - 1) & ~(long)(align - 1);
        if (_capacity - (head - Volatile.Read(ref Tail)) < total)
            return false;
        Copy(head, first);
        Copy(head + first.Length, second);
        Volatile.Write(ref Head, head + total);
        WakeIfWaiting(ref ReadersWaiting, DataSeq);
        return true;
    }

    private void Copy(long position, ReadOnlySpan<byte> data)
    {
        long at = position & _mask;
        int first = (int)Math.Min(data.Length, _capacity - at);
        data[..first].CopyTo(new Span<byte>(_data + at, first));
        if (data.Length > first)
            data[first..].CopyTo(new Span<byte>(_data, data.Length - first));
    }

    /// <summary>Consumer: copies up to <paramref name="destination"/>'s length; returns the count (0 when
    /// empty).</summary>
    public int TryRead(Span<byte> destination)
    {
        long tail = Tail; // only this side writes it
        long avail = Volatile.Read(ref Head) - tail;
        int n = (int)Math.Min(avail, destination.Length);
        if (n == 0)
            return 0;
        long at = tail & _mask;
        int first = (int)Math.Min(n, _capacity - at);
        new ReadOnlySpan<byte>(_data + at, first).CopyTo(destination);
        if (n > first)
            new ReadOnlySpan<byte>(_data, n - first).CopyTo(destination[first..]);
        Volatile.Write(ref Tail, tail + n);
        WakeIfWaiting(ref WritersWaiting, SpaceSeq);
        return n;
    }

    /// <summary>Consumer: the next <paramref name="count"/> bytes, left in the ring, as one piece or two (when they
    /// wrap at its end); false while fewer have arrived. <see cref="Skip"/> then frees them.</summary>
    public bool TryPeek(int count, out ReadOnlySpan<byte> first, out ReadOnlySpan<byte> second)
    {
        long tail = Tail;
        if (Volatile.Read(ref Head) - tail < count)
        {
            first = second = default;
            return false;
        }
        long at = tail & _mask;
        int n = (int)Math.Min(count, _capacity - at);
        first = new ReadOnlySpan<byte>(_data + at, n);
        second = new ReadOnlySpan<byte>(_data, count - n);
        return true;
    }

    /// <summary>Consumer: frees <paramref name="count"/> bytes (after <see cref="TryPeek"/>) and wakes a writer
    /// waiting for room.</summary>
    public void Skip(long count)
    {
        Volatile.Write(ref Tail, Tail + count);
        WakeIfWaiting(ref WritersWaiting, SpaceSeq);
    }

    /// <summary>Bytes the producer may still write now.</summary>
    public long Free => _capacity - (Volatile.Read(ref Head) - Volatile.Read(ref Tail));

    private static void WakeIfWaiting(ref int waiting, int* seq)
    {
        Interlocked.MemoryBarrier(); // our counter's store before the waiter count's load (Dekker)
        if (Volatile.Read(ref waiting) == 0)
            return;
        Interlocked.Increment(ref *seq);
        Interop.Futex.WakeAll(seq);
    }

    /// <summary>Sleeps (at most <paramref name="microseconds"/>) until <paramref name="ready"/> may hold: registers as
    /// a reader (<paramref name="reader"/>) or writer waiting, re-checks, then waits on the matching futex
    /// word.</summary>
    public void Sleep(bool reader, Func<bool> ready, long microseconds)
    {
        ref int waiting = ref reader ? ref ReadersWaiting : ref WritersWaiting;
        int* seq = reader ? DataSeq : SpaceSeq;
        int seen = Volatile.Read(ref *seq);
        Interlocked.Increment(ref waiting); // a full fence: our registration before the re-check below
        try
        {
            if (!ready())
                Interop.Futex.Wait(seq, seen, microseconds);
        }
        finally
        {
            Interlocked.Decrement(ref waiting);
        }
    }

    /// <summary>Producer: ends the stream and wakes a sleeping reader.</summary>
    public void CloseProducer()
    {
        Volatile.Write(ref ProducerClosedFlag, 1);
        Interlocked.Increment(ref *DataSeq);
        Interop.Futex.WakeAll(DataSeq);
    }

    /// <summary>Consumer: says it reads no more and wakes a sleeping writer.</summary>
    public void CloseConsumer()
    {
        Volatile.Write(ref ConsumerClosedFlag, 1);
        Interlocked.Increment(ref *SpaceSeq);
        Interop.Futex.WakeAll(SpaceSeq);
    }

    /// <summary>Wakes this process's and the peer's sleepers on both words (after a local shutdown).</summary>
    public void WakeEveryone()
    {
        Interlocked.Increment(ref *DataSeq);
        Interop.Futex.WakeAll(DataSeq);
        Interlocked.Increment(ref *SpaceSeq);
        Interop.Futex.WakeAll(SpaceSeq);
    }
}
