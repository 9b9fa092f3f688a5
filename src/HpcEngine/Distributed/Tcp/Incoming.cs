using System.Buffers;

namespace HpcEngine.Distributed.Tcp;

/// <summary>The peer closed its end after saying goodbye: it left, it did not crash.</summary>
internal sealed class PeerLeftException(string message) : IOException(message);

/// <summary>A received message: a pooled buffer the consumer returns with Dispose, or — when the receiver named a
/// destination in advance and the frame went straight there — no buffer at all (<see cref="InPlace"/>). Dispose is
/// idempotent: returning the same array to the pool twice would hand it to two later receivers at once.</summary>
internal sealed class Incoming : IDisposable
{
    private readonly byte[]? _buffer;
    private int _returned;

    public Incoming(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    private Incoming(int length) => Length = length;

    /// <summary>A frame already written into the destination its receiver posted.</summary>
    public static Incoming Placed(int length) => new(length);

    /// <summary>True when the payload is already in the posted destination (nothing to copy).</summary>
    public bool InPlace => _buffer == null;

    public ReadOnlySpan<byte> Span =>
        _buffer is { } b
            ? b.AsSpan(0, Length)
            : throw new InvalidOperationException("internal: the payload went straight to its destination");

    public int Length { get; }

    /// <summary>Puts the payload at <paramref name="destination"/> unless it is already there.</summary>
    public void CopyTo(Span<byte> destination)
    {
        if (!InPlace)
            Span.CopyTo(destination);
    }

    public void Dispose()
    {
        if (_buffer != null && Interlocked.Exchange(ref _returned, 1) == 0)
            ArrayPool<byte>.Shared.Return(_buffer);
    }
}
