namespace HpcEngine.Distributed;

/// <summary>A small key-value store that ranks rendezvous through (addresses, unique ids, counters, barriers). Every
/// call takes a timeout; a timed-out call throws <see cref="TimeoutException"/> and leaves the store usable.</summary>
public interface IStore : IDisposable
{
    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/> (overwriting), waking every waiter on
    /// it.</summary>
    void Set(string key, byte[] value, TimeSpan? timeout = null);

    /// <summary>Sets <paramref name="key"/> for as long as this client's connection lives: the server deletes it when
    /// the connection closes — at once when the process dies, since the kernel closes its sockets (ZooKeeper's
    /// ephemeral nodes, an etcd lease). A process that is alive but frozen keeps it.</summary>
    void SetEphemeral(string key, byte[] value, TimeSpan? timeout = null);

    /// <summary>The value, waiting until some rank sets the key.</summary>
    byte[] Get(string key, TimeSpan? timeout = null);

    /// <summary>Adds to a 64-bit counter (created at 0) and returns the new value.</summary>
    long Add(string key, long amount, TimeSpan? timeout = null);

    /// <summary>Sets <paramref name="desired"/> if the current value equals <paramref name="expected"/> (an empty
    /// expected value means "absent"); returns the value now stored.</summary>
    byte[] CompareSet(string key, byte[] expected, byte[] desired, TimeSpan? timeout = null);

    /// <summary>Removes a key; returns whether it existed.</summary>
    bool Delete(string key, TimeSpan? timeout = null);

    /// <summary>Waits until every key exists.</summary>
    void Wait(IEnumerable<string> keys, TimeSpan? timeout = null);
}

/// <summary>Limits and authentication of a <see cref="TcpStore"/>.</summary>
public sealed record StoreOptions
{
    /// <summary>The longest key the server accepts (8 KiB): a longer one closes the request's connection.</summary>
    public int MaxKeyBytes { get; init; } = 8 * 1024;

    /// <summary>The largest value the server accepts (8 MiB).</summary>
    public int MaxValueBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>How long a Get or Wait waits for its key when the call gives no timeout (5 minutes).</summary>
    public TimeSpan DefaultTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Shared secret (HPCENGINE_TOKEN): clients must answer an HMAC-SHA256 challenge before any request.
    /// A client with a token refuses a server without one (it would be some other job's, or a stranger's).</summary>
    public string? Token { get; init; }

    /// <summary>The job this store serves (HPCENGINE_JOB_ID, <c>launch --rdzv-id</c>). A client of another job is
    /// refused at its first byte, naming both jobs, and changes nothing; null accepts any client (and a null client
    /// accepts any server).</summary>
    public string? JobId { get; init; }

    /// <summary>Most bytes (keys and values) the server holds in all; a write past it is refused with an
    /// error.</summary>
    public long MaxTotalBytes { get; init; } = 64L << 20;
}
