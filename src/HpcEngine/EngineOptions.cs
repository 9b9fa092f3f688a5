using System.Globalization;

namespace HpcEngine;

/// <summary>The engine's process-wide defaults that the environment may set (docs/ENVIRONMENT.md lists every
/// variable). This is the core's one reader of its <c>HPCENGINE_*</c> variables; the transport's are
/// <see cref="Distributed.Tcp.TcpOptions.FromEnvironment"/>, the launcher contract's
/// <see cref="Distributed.DistributedEnvironment"/>. An embedding tool that wants none of them sets the
/// corresponding properties (<see cref="KernelThreads.Count"/>) instead.</summary>
public sealed record EngineOptions
{
    /// <summary>HPCENGINE_NUM_THREADS: threads for CPU kernels (null: every core).</summary>
    public int? Threads { get; init; }

    /// <summary>HPCENGINE_SPIN_US: how long a CPU worker thread spins for the next parallel region before it
    /// sleeps.</summary>
    public TimeSpan WorkerSpin { get; init; } = TimeSpan.FromMicroseconds(250);

    /// <summary>HPCENGINE_POISON_POOL=1: fill every buffer the storage pool hands out with NaN bytes (a debug aid for
    /// kernels that read memory they never wrote).</summary>
    public bool PoisonPool { get; init; }

    /// <summary>The options the variables of <paramref name="getenv"/> (default: this process's environment) set;
    /// malformed values are ignored, leaving the default.</summary>
    public static EngineOptions FromEnvironment(Func<string, string?>? getenv = null)
    {
        getenv ??= Environment.GetEnvironmentVariable;
        var o = new EngineOptions();
        if (
            int.TryParse(getenv("HPCENGINE_NUM_THREADS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)
            && n > 0
        )
            o = o with { Threads = n };
        if (
            long.TryParse(getenv("HPCENGINE_SPIN_US"), NumberStyles.Integer, CultureInfo.InvariantCulture, out long us)
            && us >= 0
        )
            o = o with { WorkerSpin = TimeSpan.FromMicroseconds(us) };
        if (getenv("HPCENGINE_POISON_POOL") == "1")
            o = o with { PoisonPool = true };
        return o;
    }

    /// <summary>This process's, read once at first use.</summary>
    internal static EngineOptions Process => ProcessOptions.Value;

    private static readonly Lazy<EngineOptions> ProcessOptions = new(() => FromEnvironment());
}
