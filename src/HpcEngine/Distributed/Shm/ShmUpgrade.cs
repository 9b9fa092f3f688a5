using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Distributed.Shm;

/// <summary>Turns the freshly connected TCP links between ranks of one host into shared-memory links. Every rank
/// publishes its transport setting and <see cref="HostIdentity"/> in the store (<c>{prefix}/host/{rank}</c>, which also
/// gives every rank the job's topology); a pair whose identities match and where neither side asked for TCP upgrades
/// over its first socket, in three phases that cannot deadlock whatever order ranks take their peers in: (1) the higher
/// rank of each pair creates a segment and sends its name (a small write that never blocks), (2) the lower rank maps it
/// and acknowledges, (3) the creator reads the acknowledgement and unlinks the file. A pair where mapping fails (ranks
/// in containers with their own /dev/shm) stays on TCP with a warning, unless shm was required.</summary>
internal static class ShmUpgrade
{
    private const uint UpgradeMagic = 0x48504353; // "HPCS"

    /// <summary>What this rank publishes before it advertises its address.</summary>
    public static void Publish(IStore store, string prefix, int rank, TcpOptions options) =>
        store.Set(
            $"{prefix}/host/{rank}",
            Encoding.UTF8.GetBytes($"{options.Transport.ToString().ToLowerInvariant()}|{options.HostIdentity}")
        );

    /// <summary>Every rank's published transport setting and host identity (this rank's own as it published it). Read
    /// once the mesh is connected: every peer published before it advertised the address this rank reached.</summary>
    public static (LinkTransport Mode, string Host)[] ReadPeers(
        IStore store,
        string prefix,
        int rank,
        int size,
        TcpOptions options
    )
    {
        var peers = new (LinkTransport, string)[size];
        for (int p = 0; p < size; p++)
        {
            if (p == rank)
            {
                peers[p] = (options.Transport, options.HostIdentity);
                continue;
            }
            var parts = Encoding
                .UTF8.GetString(store.Get($"{prefix}/host/{p}", TimeSpan.FromSeconds(30)))
                .Split('|', 2);
            peers[p] = (TcpOptions.ParseTransport(parts[0]), parts.Length > 1 ? parts[1] : "?");
        }
        return peers;
    }

    /// <summary>The streams of every link: one shared-memory stream for upgraded same-host peers (their other sockets
    /// closed; the first kept as the peer's death notice), the sockets as TCP streams for the rest.</summary>
    public static ILinkStream[]?[] Negotiate(
        int rank,
        int size,
        Socket?[]?[] sockets,
        (LinkTransport Mode, string Host)[] peers,
        TcpOptions options,
        DateTime deadline
    )
    {
        var shm = new bool[size];
        for (int p = 0; p < size; p++)
            if (sockets[p] != null)
                shm[p] = Wanted(rank, p, peers[p], options);
        var segments = new ShmSegment?[size];
        try
        {
            // (1) As the higher rank of the pair: create and offer (an empty name: "could not, stay on TCP").
            for (int p = 0; p < rank; p++)
            {
                if (!shm[p])
                    continue;
                try
                {
                    segments[p] = ShmSegment.Create(options.ShmRingBytes);
                }
                catch (Exception e)
                    when (e is IOException or UnauthorizedAccessException && options.Transport != LinkTransport.Shm)
                {
                    options.Warn(
                        $"rank {rank}: cannot create a shared-memory segment in {ShmSegment.Directory} for rank {p} "
                            + $"({e.Message}); that link stays on TCP"
                    );
                }
                Offer(sockets[p]![0]!, segments[p]?.Name ?? "");
                shm[p] = segments[p] != null;
            }
            // (2) As the lower rank: map what the peer offered and say whether it worked.
            for (int p = rank + 1; p < size; p++)
            {
                if (!shm[p])
                    continue;
                var s = sockets[p]![0]!;
                string name = ReadOffer(s, p, deadline);
                if (name.Length == 0)
                {
                    shm[p] = false;
                    continue;
                }
                try
                {
                    segments[p] = ShmSegment.Open(name);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
                {
                    Answer(s, false);
                    if (options.Transport == LinkTransport.Shm)
                        throw new InvalidOperationException(
                            $"HPCENGINE_TRANSPORT=shm: rank {rank} cannot map the shared memory rank {p} created "
                                + $"({e.Message}); use auto or tcp",
                            e
                        );
                    options.Warn(
                        $"rank {rank}: cannot map rank {p}'s shared-memory segment ({e.Message}); that link stays on "
                            + $"TCP"
                    );
                    shm[p] = false;
                    continue;
                }
                Answer(s, true);
            }
            // (3) As the creator: the peer has mapped it (or not); the file goes either way.
            for (int p = 0; p < rank; p++)
            {
                if (!shm[p])
                    continue;
                bool mapped = ReadAnswer(sockets[p]![0]!, p, deadline);
                ShmSegment.Unlink(segments[p]!.Name);
                if (mapped)
                    continue;
                segments[p]!.Dispose();
                segments[p] = null;
                shm[p] = false;
                if (options.Transport == LinkTransport.Shm)
                    throw new InvalidOperationException(
                        $"HPCENGINE_TRANSPORT=shm: rank {p} could not map this rank's shared memory (its /dev/shm is "
                            + $"another one); use auto or tcp"
                    );
            }
        }
        catch
        {
            foreach (var seg in segments)
                if (seg != null)
                {
                    ShmSegment.Unlink(seg.Name);
                    seg.Dispose();
                }
            throw;
        }
        var streams = new ILinkStream[]?[size];
        for (int p = 0; p < size; p++)
        {
            if (sockets[p] is not { } socks)
                continue;
            if (segments[p] is { } seg)
            {
                foreach (var extra in socks.Skip(1))
                    extra!.Dispose();
                socks[0]!.ReceiveTimeout = 0;
                streams[p] =
                [
                    new ShmLinkStream(seg, creator: p < rank, socks[0]!, p, options.ShmSpin, options.Timeout),
                ];
            }
            else
                streams[p] = socks.Select(s => (ILinkStream)new SocketLinkStream(s!, options.Timeout)).ToArray();
        }
        return streams;
    }

    /// <summary>Whether this rank and <paramref name="peer"/> should share memory, from both published
    /// settings.</summary>
    private static bool Wanted(int rank, int peer, (LinkTransport Mode, string Host) their, TcpOptions options)
    {
        var (theirs, theirHost) = their;
        bool sameHost = theirHost == options.HostIdentity;
        if (options.Transport == LinkTransport.Shm && !sameHost)
            throw new InvalidOperationException(
                $"HPCENGINE_TRANSPORT=shm, but rank {peer} is on another host ({theirHost}; this rank: "
                    + $"{HostIdentity.Current}): shared memory works only inside one host; use auto (shared memory "
                    + $"inside a host, TCP between hosts)"
            );
        if (options.Transport == LinkTransport.Shm && theirs == LinkTransport.Tcp)
            throw new InvalidOperationException(
                $"rank {rank} asks for HPCENGINE_TRANSPORT=shm but rank {peer}, on the same host, for tcp: set the "
                    + $"same transport on every rank"
            );
        return sameHost && options.Transport != LinkTransport.Tcp && theirs != LinkTransport.Tcp;
    }

    private static void Offer(Socket s, string name)
    {
        var msg = new byte[6 + Encoding.UTF8.GetByteCount(name)];
        BinaryPrimitives.WriteUInt32LittleEndian(msg, UpgradeMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(msg.AsSpan(4), (ushort)(msg.Length - 6));
        Encoding.UTF8.GetBytes(name, msg.AsSpan(6));
        s.Send(msg);
    }

    private static string ReadOffer(Socket s, int peer, DateTime deadline)
    {
        var head = new byte[6];
        ReadExactly(s, head, peer, deadline);
        if (BinaryPrimitives.ReadUInt32LittleEndian(head) != UpgradeMagic)
            throw new IOException(
                $"rank {peer} sent no shared-memory offer where one was due: do both run the same HpcEngine version?"
            );
        var name = new byte[BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(4))];
        ReadExactly(s, name, peer, deadline);
        return Encoding.UTF8.GetString(name);
    }

    private static void Answer(Socket s, bool mapped) => s.Send([mapped ? (byte)1 : (byte)0]);

    private static bool ReadAnswer(Socket s, int peer, DateTime deadline)
    {
        var b = new byte[1];
        ReadExactly(s, b, peer, deadline);
        return b[0] == 1;
    }

    private static void ReadExactly(Socket s, byte[] buffer, int peer, DateTime deadline)
    {
        s.ReceiveTimeout = (int)Math.Clamp((deadline - DateTime.UtcNow).TotalMilliseconds, 1000, int.MaxValue);
        int got = 0;
        try
        {
            while (got < buffer.Length)
            {
                int n = s.Receive(buffer, got, buffer.Length - got, SocketFlags.None);
                if (n == 0)
                    throw new IOException($"rank {peer} closed the connection during the shared-memory upgrade");
                got += n;
            }
        }
        catch (SocketException e)
        {
            throw new IOException($"rendezvous: no shared-memory handshake from rank {peer} ({e.SocketErrorCode})", e);
        }
    }
}
