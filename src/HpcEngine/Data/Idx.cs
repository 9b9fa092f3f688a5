using System.Buffers.Binary;
using System.IO.Compression;

namespace HpcEngine.Data;

/// <summary>Which rule an IDX file broke.</summary>
public enum IdxCheck
{
    /// <summary>The file does not exist.</summary>
    Missing,

    /// <summary>The file could not be read (permissions, I/O error).</summary>
    Unreadable,

    /// <summary>The gzip stream is damaged.</summary>
    CorruptGzip,

    /// <summary>The file ends inside the header.</summary>
    HeaderTruncated,

    /// <summary>The first two bytes are not zero (not an IDX file).</summary>
    BadMagic,

    /// <summary>The element type code is not one IDX defines.</summary>
    UnknownTypeCode,

    /// <summary>The number of dims is 0 or larger than the reader accepts.</summary>
    BadRank,

    /// <summary>A dim is zero.</summary>
    ZeroDimension,

    /// <summary>The declared payload is larger than the reader accepts.</summary>
    TooLarge,

    /// <summary>The file ends before the payload its dims declare.</summary>
    Truncated,

    /// <summary>Bytes follow the payload.</summary>
    TrailingData,

    /// <summary>The images and labels files disagree (count or shape).</summary>
    Mismatch,
}

/// <summary>A data file that cannot be used, naming the file and the check it failed. Nothing partial is
/// returned.</summary>
public sealed class DataFormatException : IOException
{
    /// <summary>An exception with the default message.</summary>
    public DataFormatException() { }

    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public DataFormatException(string message)
        : base(message) { }

    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public DataFormatException(string message, Exception inner)
        : base(message, inner) { }

    /// <summary><paramref name="file"/> failed <paramref name="check"/>; <paramref name="detail"/> says how.</summary>
    public DataFormatException(string file, IdxCheck check, string detail, Exception? inner = null)
        : base($"{file}: {detail} ({check})", inner)
    {
        File = file;
        Check = check;
    }

    /// <summary>The file that failed.</summary>
    public string? File { get; }

    /// <summary>The rule it broke.</summary>
    public IdxCheck Check { get; }
}

/// <summary>The contents of an IDX file: big-endian dims and the raw payload (element type by its code).</summary>
public sealed record IdxData(int[] Dims, byte TypeCode, byte[] Payload);

/// <summary>Reads the IDX format of MNIST and Fashion-MNIST (raw or gzip): magic 0x00 0x00, a type code, the rank,
/// then rank big-endian u32 dims and the payload. Every field is validated; the payload must have exactly
/// Π dims × element size bytes (checked for overflow before anything is allocated, so a hostile header cannot
/// make it allocate gigabytes).</summary>
public static class Idx
{
    /// <summary>Largest payload accepted (bytes).</summary>
    public const long MaxPayload = 1L << 30;

    private static int ElementSize(byte code) =>
        code switch
        {
            0x08 or 0x09 => 1,
            0x0B => 2,
            0x0C or 0x0D => 4,
            0x0E => 8,
            _ => 0,
        };

    /// <summary>Reads and validates a file (gzip is detected by its magic bytes).</summary>
    public static IdxData Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!System.IO.File.Exists(path))
            throw new DataFormatException(path, IdxCheck.Missing, "file not found");
        try
        {
            using var fs = System.IO.File.OpenRead(path);
            return Read(fs, path);
        }
        catch (IOException e) when (e is not DataFormatException)
        {
            throw new DataFormatException(path, IdxCheck.Unreadable, $"cannot read the file: {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new DataFormatException(path, IdxCheck.Unreadable, $"cannot read the file: {e.Message}", e);
        }
    }

    /// <summary>Reads and validates IDX data from a stream; <paramref name="name"/> names it in errors.</summary>
    public static IdxData Read(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var head = new byte[2];
        int got = stream.ReadAtLeast(head, 2, throwOnEndOfStream: false);
        Stream body = new PrefixStream(head.AsMemory(0, got), stream);
        if (got == 2 && head[0] == 0x1f && head[1] == 0x8b)
            body = new GZipStream(body, CompressionMode.Decompress);
        try
        {
            return ReadRaw(body, name);
        }
        catch (InvalidDataException e)
        {
            throw new DataFormatException(name, IdxCheck.CorruptGzip, $"the gzip stream is corrupt: {e.Message}", e);
        }
    }

    private static IdxData ReadRaw(Stream s, string name)
    {
        var magic = new byte[4];
        if (s.ReadAtLeast(magic, 4, throwOnEndOfStream: false) < 4)
            throw new DataFormatException(name, IdxCheck.HeaderTruncated, "the file ends inside the 4-byte IDX magic");
        if (magic[0] != 0 || magic[1] != 0)
            throw new DataFormatException(
                name,
                IdxCheck.BadMagic,
                $"the magic starts {magic[0]:x2} {magic[1]:x2}, not 00 00: not an IDX file"
            );
        int size = ElementSize(magic[2]);
        if (size == 0)
            throw new DataFormatException(
                name,
                IdxCheck.UnknownTypeCode,
                $"type code 0x{magic[2]:x2} is not an IDX type (08, 09, 0B, 0C, 0D, 0E)"
            );
        int rank = magic[3];
        if (rank is < 1 or > 8)
            throw new DataFormatException(name, IdxCheck.BadRank, $"rank {rank} is outside 1..8");
        var dimBytes = new byte[4 * rank];
        if (s.ReadAtLeast(dimBytes, dimBytes.Length, throwOnEndOfStream: false) < dimBytes.Length)
            throw new DataFormatException(
                name,
                IdxCheck.HeaderTruncated,
                $"the file ends inside the {rank} dimensions"
            );
        var dims = new int[rank];
        long bytes = size;
        for (int i = 0; i < rank; i++)
        {
            uint d = BinaryPrimitives.ReadUInt32BigEndian(dimBytes.AsSpan(4 * i));
            if (d == 0)
                throw new DataFormatException(name, IdxCheck.ZeroDimension, $"dimension {i} is zero");
            if (d > int.MaxValue || bytes > MaxPayload / d)
                throw new DataFormatException(
                    name,
                    IdxCheck.TooLarge,
                    $"the dimensions {string.Join(" x ", dimBytes.Chunk(4).Select(c => BinaryPrimitives.ReadUInt32BigEndian(c)))} describe more than {MaxPayload} bytes"
                );
            dims[i] = (int)d;
            bytes *= d;
        }
        // Grow the buffer as bytes arrive rather than trusting the header's size up front: a short file that claims a
        // large payload fails as truncated without first allocating what it claims.
        using var buffer = new MemoryStream((int)Math.Min(bytes, 1 << 20));
        var chunk = new byte[1 << 16];
        while (buffer.Length < bytes)
        {
            int got = s.Read(chunk, 0, (int)Math.Min(chunk.Length, bytes - buffer.Length));
            if (got == 0)
                break;
            buffer.Write(chunk, 0, got);
        }
        if (buffer.Length < bytes)
            throw new DataFormatException(
                name,
                IdxCheck.Truncated,
                $"the payload has {buffer.Length} of the {bytes} bytes the header describes"
            );
        var payload = buffer.Length == buffer.Capacity ? buffer.GetBuffer() : buffer.ToArray();
        if (s.ReadByte() != -1)
            throw new DataFormatException(
                name,
                IdxCheck.TrailingData,
                $"there are bytes after the {payload.Length}-byte payload the header describes"
            );
        return new IdxData(dims, magic[2], payload);
    }

    /// <summary>Writes raw (uncompressed) IDX; used by tests and tools.</summary>
    public static void Write(Stream s, byte typeCode, int[] dims, ReadOnlySpan<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(dims);
        s.Write([0, 0, typeCode, (byte)dims.Length]);
        Span<byte> b = stackalloc byte[4];
        foreach (int d in dims)
        {
            BinaryPrimitives.WriteUInt32BigEndian(b, (uint)d);
            s.Write(b);
        }
        s.Write(payload);
    }

    /// <summary>Puts already-read bytes back in front of a stream.</summary>
    private sealed class PrefixStream(ReadOnlyMemory<byte> prefix, Stream inner) : Stream
    {
        private ReadOnlyMemory<byte> _prefix = prefix;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_prefix.Length > 0)
            {
                int n = Math.Min(buffer.Length, _prefix.Length);
                _prefix.Span[..n].CopyTo(buffer);
                _prefix = _prefix[n..];
                return n;
            }
            return inner.Read(buffer);
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush() { }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
