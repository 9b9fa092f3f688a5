namespace HpcEngine.Serving;

/// <summary>How <see cref="InferenceServer"/> serves a checkpoint directory.</summary>
public sealed record ServeOptions
{
    /// <summary>The checkpoint directory (train's checkpoint directory); a newer checkpoint there is hot-reloaded.</summary>
    public required string CheckpointDir { get; init; }

    /// <summary>The address to bind: loopback unless told otherwise.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The port (0: any free one; <see cref="InferenceServer.Address"/> says which).</summary>
    public int Port { get; init; } = 8000;

    /// <summary>The most samples the dynamic batcher puts in one forward pass (1: no batching).</summary>
    public int MaxBatch { get; init; } = 64;

    /// <summary>How long a batch waits for more requests after its first.</summary>
    public double MaxDelayMs { get; init; } = 5;

    /// <summary>When set, every request needs <c>Authorization: Bearer TOKEN</c> (401 otherwise).</summary>
    public string? Token { get; init; }

    /// <summary>The largest request body accepted (413 beyond).</summary>
    public long MaxBodyBytes { get; init; } = 16L << 20;

    /// <summary>The model's name in URLs (default: its architecture).</summary>
    public string? ModelName { get; init; }

    /// <summary>How often the checkpoint directory is polled for a newer checkpoint (zero: never).</summary>
    public TimeSpan ReloadInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a shutdown waits for in-flight requests.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Lines about the server (start, reloads, shutdown); null: quiet.</summary>
    public Action<string>? Log { get; init; }
}
