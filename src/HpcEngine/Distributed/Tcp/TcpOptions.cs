using System.Globalization;

namespace HpcEngine.Distributed.Tcp;

/// <summary>How a link between two ranks carries its bytes.</summary>
public enum LinkTransport
{
    /// <summary>Shared memory between ranks of one host (same host identity and the same /dev/shm), TCP
    /// otherwise.</summary>
    Auto,

    /// <summary>TCP for every link, even between ranks of one host.</summary>
    Tcp,

    /// <summary>Shared memory for every link: a peer on another host is an error.</summary>
    Shm,
}

/// <summary>Settings of the TCP backend (the engine's own collectives: TCP between hosts, shared memory inside
/// one).</summary>
public sealed record TcpOptions
{
    /// <summary>This rank's own address: its peer listener binds here and is advertised to the other ranks through the
    /// store. <see cref="FromEnvironment"/> sets it with <see cref="LocalAddress.Choose"/> (HPCENGINE_LOCAL_ADDR, else
    /// the address this host routes to MASTER_ADDR from); loopback by default for runs built by hand.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Shared memory or TCP between same-host ranks (HPCENGINE_TRANSPORT=auto|tcp|shm; default auto). Every
    /// rank must use the same setting where it matters: a rank that asks for shm fails when a peer refuses
    /// it.</summary>
    public LinkTransport Transport { get; init; } = LinkTransport.Auto;

    /// <summary>Bytes of each direction's ring of a shared-memory link (a power of two, 64 KiB to 1 GiB;
    /// HPCENGINE_SHM_RING_BYTES). Default 16 MiB: on the 2-core development VM a 16 MB allreduce of 2 ranks took 4.1 ms
    /// with 16 MiB rings and 6.8 ms with 4 MiB ones (a full ring hands the rest of a message to the link's writer
    /// thread). /dev/shm holds two rings per pair of ranks on the host: 32 MiB per pair, 192 MiB for 4 local
    /// ranks.</summary>
    public long ShmRingBytes
    {
        get => _shmRingBytes;
        init =>
            _shmRingBytes =
                value >= 64 * 1024 && (value & (value - 1)) == 0 && value <= 1L << 30
                    ? value
                    : throw new ArgumentOutOfRangeException(
                        nameof(ShmRingBytes),
                        $"the shared-memory ring size must be a power of two from 64 KiB to 1 GiB (got {value})"
                    );
    }

    private readonly long _shmRingBytes = 16L << 20;

    /// <summary>The identity this rank publishes as its host (<see cref="Shm.HostIdentity"/>). Tests give ranks of one
    /// process different identities to stand for several hosts.</summary>
    internal string HostIdentity { get; init; } = Shm.HostIdentity.Current;

    /// <summary>Default timeout of every collective (10 minutes, like c10d).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Allreduce switches from the direct exchange to the ring above this many bytes.</summary>
    public long SmallMessageBytes { get; init; } = 64 * 1024;

    /// <summary>Whether <see cref="AllReduceAlgorithm.Auto"/> may pick <see cref="AllReduceAlgorithm.Hierarchical"/>
    /// above <see cref="SmallMessageBytes"/> when the group spans several hosts with the same number of ranks on each
    /// (HPCENGINE_HIERARCHICAL=1|all|0, default 1). An allreduce that names the algorithm gets it either way.</summary>
    public bool Hierarchical { get; init; } = true;

    /// <summary>Broadcast, allgather and reduce-scatter go hierarchical too, on the same condition
    /// (HPCENGINE_HIERARCHICAL=all). Off by default: measured on 2 namespace hosts × 2 ranks at 1 Gbit/s they move a
    /// third fewer bytes between hosts than the flat rings but did not finish sooner (bench/RESULTS.md, #13).</summary>
    public bool HierarchicalAll { get; init; }

    /// <summary>Ring chunk: the unit that pipelines send, receive and reduce.</summary>
    public int ChunkBytes { get; init; } = 1 << 20;

    /// <summary>Sockets per peer link: consecutive frames go out on them in turn (and are put back in order on
    /// arrival), so one link can use several TCP flows — cloud networks often cap a single flow below the NIC's
    /// rate.</summary>
    public int SocketsPerLink
    {
        get => _socketsPerLink;
        init =>
            _socketsPerLink = value is >= 1 and <= 64
                ? value
                : throw new ArgumentOutOfRangeException(
                    nameof(SocketsPerLink),
                    $"sockets per link must be 1..64 (got {value})"
                );
    }

    private readonly int _socketsPerLink = 1;

    /// <summary>How long a thread waiting for a small op polls its socket (yielding between polls) before it sleeps.
    /// Default: 100 µs when this machine has a core per local rank (LOCAL_WORLD_SIZE ≤ cores), else 0 — measured on
    /// 2 cores: 4 KB allreduce 43-53 µs instead of 69-87 with 2 ranks, but slower with 4 ranks sharing the 2 cores.
    /// HPCENGINE_LINK_SPIN_US overrides.</summary>
    public TimeSpan WaiterSpin { get; init; } = DefaultSpin();

    private static TimeSpan DefaultSpin()
    {
        if (long.TryParse(Environment.GetEnvironmentVariable("HPCENGINE_LINK_SPIN_US"), out long us) && us >= 0)
            return TimeSpan.FromMicroseconds(us);
        return
            int.TryParse(Environment.GetEnvironmentVariable("LOCAL_WORLD_SIZE"), out int local)
            && local > 0
            && local <= Environment.ProcessorCount
            ? TimeSpan.FromMicroseconds(100)
            : TimeSpan.Zero;
    }

    /// <summary>How long a thread waiting on a shared-memory link polls it (yielding the core between polls) before it
    /// sleeps on the ring's futex; HPCENGINE_SHM_SPIN_US, default 200 µs whatever the core count: a yielding poller
    /// gives its core to any runnable rank, and on the 2-core VM with 4 ranks a 4 KB allreduce took 65 µs with it
    /// against 141 µs sleeping at once (1 MB: 894 against 919 µs).</summary>
    public TimeSpan ShmSpin { get; init; } =
        long.TryParse(Environment.GetEnvironmentVariable("HPCENGINE_SHM_SPIN_US"), out long shmUs) && shmUs >= 0
            ? TimeSpan.FromMicroseconds(shmUs)
            : TimeSpan.FromMicroseconds(200);

    /// <summary>Whether small allreduces of a group whose peers all share this host skip the link framing and run on
    /// the calling thread over the links' exchange rings (default true; false only to measure the difference).</summary>
    public bool ShmExchange { get; init; } = true;

    /// <summary>Largest allreduce that goes over the exchange rings, in 128 KiB pieces beyond one message
    /// (HPCENGINE_SHM_EXCHANGE_BYTES; 0 turns the path off). Such an op completes on the calling thread, so it does not
    /// overlap the caller's own work; above this size ops run asynchronously on the link threads. Default 64 MiB:
    /// measured on the 2-core VM with 2 ranks the exchange was 1.7x / 1.5x / 1.9x faster than the framed ring at 1,
    /// 16 and 64 MB (bench/RESULTS.md, #13), more than the overlap could win back there.</summary>
    public long ShmExchangeMaxBytes { get; init; } = 64L << 20;

    /// <summary>Largest frame accepted from a peer (a bigger length prefix closes the link).</summary>
    public long MaxFrameBytes { get; init; } = 256L << 20;

    /// <summary>Shared secret for the HMAC challenge on every link (HPCENGINE_TOKEN).</summary>
    public string? Token { get; init; }

    /// <summary>The job's id (HPCENGINE_JOB_ID; <c>launch --rdzv-id</c>): the store refuses ranks of another
    /// job.</summary>
    public string? JobId { get; init; }

    /// <summary>Compare (op, dtype, count, sequence) across ranks before each collective
    /// (HPCENGINE_DISTRIBUTED_DEBUG=1).</summary>
    public bool CheckDesync { get; init; }

    /// <summary>Emulated network (bandwidth cap and added latency per link), or null.</summary>
    public NetworkEmulation? Emulation { get; init; }

    /// <summary>How long to wait for every rank to connect.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>After this long without progress, a waiting rendezvous or op says what and whom it waits on (and
    /// repeats at this interval until it completes or times out). HPCENGINE_STALL_WARN_S; default 30 s.</summary>
    public TimeSpan StallWarning { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>An idle link sends a heartbeat this often (HPCENGINE_HEARTBEAT_S; default 1 s); a peer silent for three
    /// intervals is named as unreachable or frozen in stall warnings and timeout errors.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A peer silent (not even a heartbeat) for this long counts as lost: its link fails and the mesh aborts,
    /// as when it dies (HPCENGINE_PEER_TIMEOUT_S). Null (the default) leaves silence to the op timeouts; elastic
    /// training sets 2 s, so a frozen or partitioned rank is dropped within it.</summary>
    public TimeSpan? PeerTimeout { get; init; }

    /// <summary>Where those warnings go (default: standard error, prefixed "[hpcengine] ").</summary>
    public Action<string> Warn { get; init; } = DefaultWarn;

    private static void DefaultWarn(string message) => Console.Error.WriteLine("[hpcengine] " + message);

    /// <summary>Options from the environment: the local address (<see cref="LocalAddress.Choose"/> for a store at
    /// <paramref name="masterAddr"/>), HPCENGINE_TOKEN, HPCENGINE_JOB_ID, HPCENGINE_STALL_WARN_S,
    /// HPCENGINE_DISTRIBUTED_DEBUG, HPCENGINE_NET_EMULATE, HPCENGINE_TIMEOUT_S, HPCENGINE_ALLREDUCE_SMALL_BYTES,
    /// HPCENGINE_CHUNK_BYTES, HPCENGINE_SOCKETS_PER_LINK, HPCENGINE_TRANSPORT, HPCENGINE_SHM_RING_BYTES,
    /// HPCENGINE_SHM_EXCHANGE_BYTES, HPCENGINE_HIERARCHICAL (and HPCENGINE_LINK_SPIN_US and HPCENGINE_SHM_SPIN_US, read by <see cref="WaiterSpin"/>'s
    /// and <see cref="ShmSpin"/>'s defaults).</summary>
    public static TcpOptions FromEnvironment(string masterAddr)
    {
        var o = new TcpOptions
        {
            Host = LocalAddress.Choose(masterAddr, Environment.GetEnvironmentVariable("HPCENGINE_LOCAL_ADDR")),
        };
        var token = Environment.GetEnvironmentVariable("HPCENGINE_TOKEN");
        if (!string.IsNullOrEmpty(token))
            o = o with { Token = token };
        var job = Environment.GetEnvironmentVariable("HPCENGINE_JOB_ID");
        if (!string.IsNullOrEmpty(job))
            o = o with { JobId = job };
        if (Environment.GetEnvironmentVariable("HPCENGINE_DISTRIBUTED_DEBUG") == "1")
            o = o with { CheckDesync = true };
        var emu = Environment.GetEnvironmentVariable("HPCENGINE_NET_EMULATE");
        if (!string.IsNullOrEmpty(emu))
            o = o with { Emulation = NetworkEmulation.Parse(emu) };
        if (
            double.TryParse(
                Environment.GetEnvironmentVariable("HPCENGINE_TIMEOUT_S"),
                NumberStyles.Float,
                CultureInfo.InvariantCulture,
                out double s
            )
            && s > 0
        )
            o = o with { Timeout = TimeSpan.FromSeconds(s) };
        if (
            long.TryParse(Environment.GetEnvironmentVariable("HPCENGINE_ALLREDUCE_SMALL_BYTES"), out long small)
            && small >= 0
        )
            o = o with { SmallMessageBytes = small };
        if (int.TryParse(Environment.GetEnvironmentVariable("HPCENGINE_CHUNK_BYTES"), out int chunk) && chunk >= 4096)
            o = o with { ChunkBytes = chunk };
        if (
            double.TryParse(
                Environment.GetEnvironmentVariable("HPCENGINE_STALL_WARN_S"),
                NumberStyles.Float,
                CultureInfo.InvariantCulture,
                out double warn
            )
            && warn > 0
        )
            o = o with { StallWarning = TimeSpan.FromSeconds(warn) };
        if (
            double.TryParse(
                Environment.GetEnvironmentVariable("HPCENGINE_HEARTBEAT_S"),
                NumberStyles.Float,
                CultureInfo.InvariantCulture,
                out double beat
            )
            && beat > 0
        )
            o = o with { HeartbeatInterval = TimeSpan.FromSeconds(beat) };
        if (
            double.TryParse(
                Environment.GetEnvironmentVariable("HPCENGINE_PEER_TIMEOUT_S"),
                NumberStyles.Float,
                CultureInfo.InvariantCulture,
                out double peerTimeout
            )
            && peerTimeout > 0
        )
            o = o with { PeerTimeout = TimeSpan.FromSeconds(peerTimeout) };
        var hier = Environment.GetEnvironmentVariable("HPCENGINE_HIERARCHICAL");
        if (!string.IsNullOrEmpty(hier))
            o = o with
            {
                Hierarchical = hier.Trim() switch
                {
                    "1" or "on" or "true" or "all" => true,
                    "0" or "off" or "false" => false,
                    _ => throw new FormatException(
                        $"HPCENGINE_HIERARCHICAL='{hier}' is not 1 (hierarchical allreduce across hosts when it fits), "
                            + $"all (broadcast, allgather and reduce-scatter too) or 0 (flat algorithms only)"
                    ),
                },
                HierarchicalAll = hier.Trim() == "all",
            };
        var transport = Environment.GetEnvironmentVariable("HPCENGINE_TRANSPORT");
        if (!string.IsNullOrEmpty(transport))
            o = o with { Transport = ParseTransport(transport) };
        var ring = Environment.GetEnvironmentVariable("HPCENGINE_SHM_RING_BYTES");
        if (!string.IsNullOrEmpty(ring))
            o = o with
            {
                ShmRingBytes = long.TryParse(ring, out long rb)
                    ? rb
                    : throw new FormatException(
                        $"HPCENGINE_SHM_RING_BYTES='{ring}' is not a number (a power of two, 65536..1073741824)"
                    ),
            };
        var exchange = Environment.GetEnvironmentVariable("HPCENGINE_SHM_EXCHANGE_BYTES");
        if (!string.IsNullOrEmpty(exchange))
            o = o with
            {
                ShmExchangeMaxBytes =
                    long.TryParse(exchange, out long xb) && xb >= 0
                        ? xb
                        : throw new FormatException(
                            $"HPCENGINE_SHM_EXCHANGE_BYTES='{exchange}' is not a byte count (0 or more; 0 turns the "
                                + "shared-memory exchange off)"
                        ),
            };
        var spl = Environment.GetEnvironmentVariable("HPCENGINE_SOCKETS_PER_LINK");
        if (!string.IsNullOrEmpty(spl))
            o = o with
            {
                SocketsPerLink = int.TryParse(spl, out int k)
                    ? k
                    : throw new FormatException($"HPCENGINE_SOCKETS_PER_LINK='{spl}' is not a number (1..64)"),
            };
        return o;
    }

    /// <summary>"auto", "tcp" or "shm" (any case); anything else is a <see cref="FormatException"/> naming the
    /// choices.</summary>
    public static LinkTransport ParseTransport(string value) =>
        value.Trim().ToLowerInvariant() switch
        {
            "auto" => LinkTransport.Auto,
            "tcp" => LinkTransport.Tcp,
            "shm" => LinkTransport.Shm,
            _ => throw new FormatException(
                $"HPCENGINE_TRANSPORT='{value}' is not a transport: auto (shared memory inside a host, TCP between "
                    + $"hosts), tcp or shm"
            ),
        };
}

/// <summary>A constrained network on one machine: every link sends at most <see cref="BytesPerSecond"/> and every
/// frame arrives <see cref="Latency"/> late. Parsed from "bandwidth=1gbit,latency=2ms".</summary>
public sealed record NetworkEmulation(double BytesPerSecond, TimeSpan Latency)
{
    /// <summary>Parses "bandwidth=100mbit,latency=2ms" (units: bit, kbit, mbit, gbit or B, KB, MB, GB per second;
    /// us, ms, s). Either part may be omitted.</summary>
    public static NetworkEmulation Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        double bw = double.PositiveInfinity;
        var lat = TimeSpan.Zero;
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2);
            if (kv.Length != 2)
                throw new FormatException($"network emulation '{spec}': '{part}' is not key=value");
            switch (kv[0].ToLowerInvariant())
            {
                case "bandwidth":
                    bw = ParseRate(kv[1]);
                    break;
                case "latency":
                    lat = ParseTime(kv[1]);
                    break;
                default:
                    throw new FormatException(
                        $"network emulation '{spec}': unknown key '{kv[0]}' (bandwidth, latency)"
                    );
            }
        }
        return new NetworkEmulation(bw, lat);
    }

    private static double ParseRate(string v)
    {
        var units = new (string Suffix, double Bytes)[]
        {
            ("gbit", 1e9 / 8),
            ("mbit", 1e6 / 8),
            ("kbit", 1e3 / 8),
            ("bit", 1.0 / 8),
            ("gb", 1e9),
            ("mb", 1e6),
            ("kb", 1e3),
            ("b", 1),
        };
        var s = v.Trim().ToLowerInvariant();
        foreach (var (suffix, bytes) in units)
            if (
                s.EndsWith(suffix, StringComparison.Ordinal)
                && double.TryParse(s[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out double n)
                && n > 0
            )
                return n * bytes;
        throw new FormatException($"bandwidth '{v}' is not a rate like 1gbit, 100mbit or 50MB");
    }

    private static TimeSpan ParseTime(string v)
    {
        var s = v.Trim().ToLowerInvariant();
        foreach (var (suffix, ms) in new[] { ("us", 1e-3), ("ms", 1.0), ("s", 1000.0) })
            if (
                s.EndsWith(suffix, StringComparison.Ordinal)
                && double.TryParse(s[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out double n)
                && n >= 0
            )
                return TimeSpan.FromMilliseconds(n * ms);
        throw new FormatException($"latency '{v}' is not a time like 2ms or 500us");
    }
}
