namespace HpcEngine.Distributed.Tcp;

/// <summary>Buffered exact reads from a blocking link stream: small frames come through a staging buffer (one
/// <c>recv</c> often brings several), large payload remainders go straight into their destination.</summary>
internal sealed class FrameReader(ILinkStream socket, int stageBytes, int directBytes)
{
    private readonly byte[] _stage = new byte[stageBytes];
    private int _pos,
        _end;

    /// <summary>Bytes already taken from the socket and not yet consumed.</summary>
    public bool HasBuffered => _end > _pos;

    /// <summary>Fills <paramref name="dst"/>; false at end of stream.</summary>
    public bool ReadExactly(Span<byte> dst)
    {
        int got = 0;
        while (got < dst.Length)
        {
            int avail = _end - _pos;
            if (avail > 0)
            {
                int n = Math.Min(avail, dst.Length - got);
                _stage.AsSpan(_pos, n).CopyTo(dst[got..]);
                _pos += n;
                got += n;
                continue;
            }
            if (dst.Length - got >= directBytes)
            {
                int r = socket.Receive(dst[got..]);
                if (r == 0)
                    return false;
                got += r;
            }
            else
            {
                _pos = _end = 0;
                int r = socket.Receive(_stage);
                if (r == 0)
                    return false;
                _end = r;
            }
        }
        return true;
    }
}
