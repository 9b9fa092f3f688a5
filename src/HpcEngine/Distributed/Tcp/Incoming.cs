using System.Buffers;

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
