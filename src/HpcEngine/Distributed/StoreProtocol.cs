using System.Buffers;
using System.Text;

namespace HpcEngine.Distributed;

/// <summary>The store's wire vocabulary, shared by <see cref="TcpStore"/> (the client) and <see
/// cref="TcpStoreServer"/>.</summary>
internal static class StoreProtocol
{
    public const byte CmdSet = 1,
        CmdGet = 2,
        CmdAdd = 3,
        CmdCas = 4,
        CmdDelete = 5,
        CmdJoin = 6,
        CmdSetEphemeral = 7;
    public const byte StatusOk = 0,
        StatusTimeout = 1,
        StatusRefused = 2;
}

/// <summary>One store request parsed from the connection's buffer: <c>[u8 cmd][u32 keyLen][key][u32 valLen][val]
/// [u32 val2Len][val2][i64 timeoutMs]</c>.</summary>
internal readonly record struct StoreRequest(byte Cmd, string Key, byte[] Value, byte[] Value2, TimeSpan Timeout)
{
    public enum Parse
    {
        Complete,
        Incomplete,
        Malformed,
    }

    /// <summary>Parses one whole request from the front of <paramref name="buffer"/>. A length over the limit (or a
    /// negative timeout) is Malformed as soon as its prefix is seen, before any of its bytes are waited for.</summary>
    public static Parse TryParse(
        ReadOnlySequence<byte> buffer,
        StoreOptions limits,
        out StoreRequest request,
        out SequencePosition consumed
    )
    {
        request = default;
        consumed = buffer.Start;
        var r = new SequenceReader<byte>(buffer);
        if (!r.TryRead(out byte cmd))
            return Parse.Incomplete;
        var key = ReadField(ref r, limits.MaxKeyBytes, out var p1);
        if (p1 != Parse.Complete)
            return p1;
        var val = ReadField(ref r, limits.MaxValueBytes, out var p2);
        if (p2 != Parse.Complete)
            return p2;
        var val2 = ReadField(ref r, limits.MaxValueBytes, out var p3);
        if (p3 != Parse.Complete)
            return p3;
        if (!r.TryReadLittleEndian(out long timeoutMs))
            return Parse.Incomplete;
        if (timeoutMs < 0)
            return Parse.Malformed;
        request = new StoreRequest(
            cmd,
            Encoding.UTF8.GetString(key!),
            val!,
            val2!,
            TimeSpan.FromMilliseconds(Math.Min(timeoutMs, int.MaxValue))
        );
        consumed = r.Position;
        return Parse.Complete;
    }

    private static byte[]? ReadField(ref SequenceReader<byte> r, int max, out Parse parse)
    {
        if (!r.TryReadLittleEndian(out int len))
        {
            parse = Parse.Incomplete;
            return null;
        }
        if ((uint)len > (uint)max)
        {
            parse = Parse.Malformed;
            return null;
        }
        if (r.Remaining < len)
        {
            parse = Parse.Incomplete;
            return null;
        }
        var field = r.UnreadSequence.Slice(0, len).ToArray();
        r.Advance(len);
        parse = Parse.Complete;
        return field;
    }
}
