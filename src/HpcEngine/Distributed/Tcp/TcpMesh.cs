using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace HpcEngine.Distributed.Tcp;

/// <summary>The links of one process to every other rank: a full mesh built through the store. Each rank listens on an
/// ephemeral port, publishes host:port under <c>{prefix}/addr/{rank}</c>, connects to every lower rank and accepts
/// every higher one, with <see cref="TcpOptions.SocketsPerLink"/> sockets per peer. A socket's first bytes are a hello
/// (magic, rank, world size, socket index, sockets per link) and, with a token, an HMAC answer to
/// the acceptor's nonce; a wrong hello or answer drops that socket before it carries any data. Any link failure
/// aborts the whole mesh, so a rank that dies or fails takes its peers' pending ops down at once instead of leaving
/// them to wait out their timeouts.</summary>
internal sealed partial class TcpMesh : IDisposable
{
    private const uint HelloMagic = 0x48504348; // "HPCH"
    private readonly PeerLink?[] _links;
    private Exception? _failure;
    private int _nextGroupId;
    private Timer? _heartbeat;

    public int Rank { get; }
    public int Size { get; }
    public TcpOptions Options { get; }
    public Exception? Failure => Volatile.Read(ref _failure);

    /// <summary>Called (once) when the mesh fails, with the cause.</summary>
    public event Action<Exception>? Failed;

    /// <summary>The timeouts of the ops running on this mesh.</summary>
    public OpDeadlines Deadlines { get; }

    private TcpMesh(int rank, int size, TcpOptions options)
    {
        Deadlines = new OpDeadlines(options.StallWarning, options.Warn);
        Rank = rank;
        Size = size;
        Options = options;
        _links = new PeerLink?[size];
        _hosts = [options.HostIdentity];
    }

    public PeerLink Link(int peer) =>
        _links[peer] ?? throw new InvalidOperationException($"internal: no link to rank {peer}");

    public int NextGroupId() => Interlocked.Increment(ref _nextGroupId);

    public long BytesSent => _links.Sum(l => l?.BytesSent ?? 0);

    /// <summary>"shm" or "tcp": how the link to <paramref name="peer"/> carries its bytes (null for this rank
    /// itself).</summary>
    public string? TransportTo(int peer) => _links[peer]?.Transport;

    /// <summary>The host identity rank <paramref name="rank"/> published (<see cref="Shm.HostIdentity"/>): the job's
    /// topology, which hierarchical collectives follow.</summary>
    public string HostOf(int rank) => _hosts[rank];

    private string[] _hosts;

    public static TcpMesh Connect(IStore store, int rank, int size, TcpOptions options, string prefix)
    {
        var mesh = new TcpMesh(rank, size, options);
        if (size == 1)
            return mesh;
        var addr = IPAddress.TryParse(options.Host, out var ip)
            ? ip
            : Dns.GetHostAddresses(options.Host).First(a => a.AddressFamily == AddressFamily.InterNetwork);
        var listener = new TcpListener(addr, 0);
        listener.Start(size);
        var deadline = DateTime.UtcNow + options.ConnectTimeout;
        try
        {
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            Shm.ShmUpgrade.Publish(store, prefix, rank, options); // before the address: whoever sees one sees both
            store.Set($"{prefix}/addr/{rank}", Encoding.UTF8.GetBytes($"{options.Host}:{port}"));
            store.Add($"{prefix}/joined", 1);
            int k = options.SocketsPerLink;
            var sockets = new Socket?[size][];
            for (int peer = 0; peer < rank; peer++)
            {
                byte[] a = WaitForAddress(store, prefix, peer, size, deadline, options);
                var parts = Encoding.UTF8.GetString(a).Split(':');
                sockets[peer] = new Socket?[k];
                for (int i = 0; i < k; i++)
                {
                    var s = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    try
                    {
                        s.Connect(parts[0], int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
                    }
                    catch (SocketException e)
                    {
                        s.Dispose();
                        throw new IOException(
                            $"rendezvous: rank {peer} advertised {parts[0]}:{parts[1]} but this rank (on "
                                + $"{options.Host}) cannot connect to it ({e.SocketErrorCode}): set "
                                + $"HPCENGINE_LOCAL_ADDR (launch --local-addr) on that node to an address the others "
                                + $"reach",
                            e
                        );
                    }
                    SendHello(s, rank, size, i, k, options.Token);
                    sockets[peer][i] = s;
                }
            }
            int expected = (size - 1 - rank) * k;
            Task<Socket>? acceptTask = null;
            while (expected > 0)
            {
                acceptTask ??= listener.AcceptSocketAsync();
                // Wait in slices, saying who has not connected yet, so a rank that never comes is named long before
                // the rendezvous timeout.
                var slice = Min(Remaining(deadline), options.StallWarning);
                if (!acceptTask.Wait(slice))
                {
                    if (DateTime.UtcNow >= deadline)
                        throw Rendezvous(store, prefix, size, options.ConnectTimeout);
                    var missing = Enumerable
                        .Range(rank + 1, size - rank - 1)
                        .Where(p => sockets[p] == null || sockets[p].Any(x => x == null))
                        .ToList();
                    options.Warn(
                        $"rank {rank}: rendezvous waiting for rank(s) {Ranks(missing)} to connect "
                            + $"({(deadline - DateTime.UtcNow).TotalSeconds:F0}s left)"
                    );
                    continue;
                }
                var s = acceptTask.Result;
                acceptTask = null;
                s.NoDelay = true;
                (int peer, int index) hello;
                try
                {
                    hello = ReadHello(s, size, k, options.Token);
                }
                catch
                {
                    s.Dispose();
                    throw;
                }
                var (peer, index) = hello;
                if (peer <= rank || peer >= size || (sockets[peer] ??= new Socket?[k])[index] != null)
                {
                    s.Dispose(); // a stranger, a replay or a bad token: drop it and keep waiting
                    continue;
                }
                sockets[peer][index] = s;
                expected--;
            }
            var peers = Shm.ShmUpgrade.ReadPeers(store, prefix, rank, size, options);
            mesh._hosts = peers.Select(p => p.Host).ToArray();
            var streams = Shm.ShmUpgrade.Negotiate(rank, size, sockets, peers, options, deadline);
            for (int p = 0; p < size; p++)
                if (streams[p] is { } s)
                    mesh._links[p] = new PeerLink(p, s, options, mesh.OnLinkFailed);
            var beat = options.HeartbeatInterval;
            mesh._heartbeat = new Timer(
                _ =>
                {
                    foreach (var l in mesh._links)
                        l?.Heartbeat(beat);
                    mesh.FailSilentPeers();
                },
                null,
                beat,
                beat
            );
            return mesh;
        }
        catch
        {
            mesh.Dispose();
            throw;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>Rank <paramref name="peer"/>'s advertised address, waiting for it in slices and saying which ranks
    /// have not joined the store yet after each.</summary>
    private static byte[] WaitForAddress(
        IStore store,
        string prefix,
        int peer,
        int size,
        DateTime deadline,
        TcpOptions options
    )
    {
        while (true)
        {
            try
            {
                return store.Get($"{prefix}/addr/{peer}", Min(Remaining(deadline), options.StallWarning));
            }
            catch (TimeoutException)
            {
                if (DateTime.UtcNow >= deadline)
                    throw Rendezvous(store, prefix, size, options.ConnectTimeout);
                options.Warn(
                    $"rendezvous waiting for rank(s) {Ranks(Missing(store, prefix, size))} to join "
                        + $"({(deadline - DateTime.UtcNow).TotalSeconds:F0}s left)"
                );
            }
        }
    }

    /// <summary>The ranks whose address is not in the store yet (at most the first 64 asked).</summary>
    private static List<int> Missing(IStore store, string prefix, int size)
    {
        var missing = new List<int>();
        for (int r = 0; r < size && r < 64; r++)
        {
            try
            {
                store.Get($"{prefix}/addr/{r}", TimeSpan.FromMilliseconds(1));
            }
            catch (TimeoutException)
            {
                missing.Add(r);
            }
        }
        return missing;
    }

    private static string Ranks(List<int> ranks) =>
        ranks.Count == 0
            ? "?"
            : string.Join(", ", ranks.Take(16)) + (ranks.Count > 16 ? $" and {ranks.Count - 16} more" : "");

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static TimeSpan Remaining(DateTime deadline)
    {
        var r = deadline - DateTime.UtcNow;
        return r > TimeSpan.Zero ? r : TimeSpan.FromMilliseconds(1);
    }

    private static TimeoutException Rendezvous(IStore store, string prefix, int size, TimeSpan t)
    {
        long joined;
        string missing;
        try
        {
            joined = store.Add($"{prefix}/joined", 0, TimeSpan.FromSeconds(5));
            missing = $"; missing: rank(s) {Ranks(Missing(store, prefix, size))}";
        }
        catch (Exception)
        {
            (joined, missing) = (-1, "");
        }
        return new TimeoutException(
            $"rendezvous timed out after {t.TotalSeconds:F0}s: {(joined >= 0 ? joined.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?")}/{size} ranks joined{missing}"
        );
    }

    private static void SendHello(Socket s, int rank, int size, int index, int socketsPerLink, string? token)
    {
        var hello = new byte[20];
        BinaryPrimitives.WriteUInt32LittleEndian(hello, HelloMagic);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), rank);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), size);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(12), index);
        BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(16), socketsPerLink);
        s.Send(hello);
        if (token == null)
            return;
        var nonce = new byte[32];
        ReceiveExactly(s, nonce);
        s.Send(HMACSHA256.HashData(Encoding.UTF8.GetBytes(token), nonce.Concat(hello).ToArray()));
    }

    /// <summary>The (rank, socket index) of a verified hello, or rank −1 for anything else.</summary>
    private static (int Rank, int Index) ReadHello(Socket s, int size, int socketsPerLink, string? token)
    {
        s.ReceiveTimeout = 10_000;
        var hello = new byte[20];
        if (
            !ReceiveExactly(s, hello)
            || BinaryPrimitives.ReadUInt32LittleEndian(hello) != HelloMagic
            || BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(8)) != size
        )
            return (-1, 0);
        if (token != null)
        {
            var nonce = RandomNumberGenerator.GetBytes(32);
            s.Send(nonce);
            var answer = new byte[32];
            if (
                !ReceiveExactly(s, answer)
                || !CryptographicOperations.FixedTimeEquals(
                    answer,
                    HMACSHA256.HashData(Encoding.UTF8.GetBytes(token), nonce.Concat(hello).ToArray())
                )
            )
                return (-1, 0);
        }
        s.ReceiveTimeout = 0;
        int rank = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(4)),
            index = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(12));
        int theirs = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(16));
        if (theirs != socketsPerLink)
            throw new InvalidOperationException(
                $"rank {rank} connects with {theirs} socket(s) per link but this rank uses {socketsPerLink}: set "
                    + $"HPCENGINE_SOCKETS_PER_LINK (TcpOptions.SocketsPerLink) the same on every rank"
            );
        return index < 0 || index >= socketsPerLink ? (-1, 0) : (rank, index);
    }

    private static bool ReceiveExactly(Socket s, byte[] buf)
    {
        int got = 0;
        try
        {
            while (got < buf.Length)
            {
                int n = s.Receive(buf, got, buf.Length - got, SocketFlags.None);
                if (n == 0)
                    return false;
                got += n;
            }
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Fails every link (closing the sockets, so peers notice at once).</summary>
    public void Abort(Exception reason)
    {
        if (Interlocked.CompareExchange(ref _failure, reason, null) != null)
            return;
        _heartbeat?.Dispose();
        foreach (var l in _links)
            l?.Abort(reason);
        Failed?.Invoke(reason);
    }

    /// <summary>Closes every link cleanly (goodbye, then close), so peers still finishing their last op go on. A mesh
    /// that has failed does not say goodbye: its peers must see an abort, not a clean exit.</summary>
    public void Dispose()
    {
        if (Failure is { } failed)
            Abort(failed);
        _heartbeat?.Dispose();
        var closing = _links
            .Where(l => l != null)
            .Select(l => Failure != null ? l!.DisposeAsync().AsTask() : l!.CloseGracefullyAsync())
            .ToArray();
        Task.WaitAll(closing, TimeSpan.FromSeconds(5));
        Deadlines.Dispose();
        Interlocked.CompareExchange(
            ref _failure,
            new ObjectDisposedException("process group", "the process group was disposed"),
            null
        );
    }
}
