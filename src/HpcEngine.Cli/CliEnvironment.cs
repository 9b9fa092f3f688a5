namespace HpcEngine.Cli;

/// <summary>The variables the CLI itself reads (docs/ENVIRONMENT.md); the engine's own are read by
/// <see cref="EngineOptions"/>, <see cref="Distributed.Tcp.TcpOptions"/> and the launcher contract.</summary>
internal static class CliEnvironment
{
    private static string? Get(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;

    /// <summary>HPCENGINE_DEBUG=1: let exceptions surface with their stack traces instead of one error line.</summary>
    public static bool Debug => Get("HPCENGINE_DEBUG") == "1";

    /// <summary>HPCENGINE_STRAGGLER: the emulated straggler ("RANK:FACTOR") for <c>train</c>; the strategy benchmark
    /// passes its <c>--straggler</c> to its runs this way.</summary>
    public static string? Straggler => Get("HPCENGINE_STRAGGLER");

    /// <summary>HPCENGINE_ELASTIC=1 (set by <c>launch --elastic</c>): <c>train</c> runs elastic.</summary>
    public static bool Elastic => Get("HPCENGINE_ELASTIC") == "1";

    /// <summary>HPCENGINE_FAULT_PLAN: the fault plan <c>train --fault-plan</c> would take (for launched workers).</summary>
    public static string? FaultPlan => Get("HPCENGINE_FAULT_PLAN");

    /// <summary>HPCENGINE_RESTART_COUNT (set by <c>launch</c>): how many times the whole job was restarted before this
    /// start (0: the first start).</summary>
    public static int RestartCount => int.TryParse(Get("HPCENGINE_RESTART_COUNT"), out int n) && n > 0 ? n : 0;

    /// <summary>HPCENGINE_TOKEN: the job's shared secret, handed by <c>launch</c> to the rendezvous store and
    /// workers.</summary>
    public static string? Token => Get("HPCENGINE_TOKEN");

    /// <summary>Whether this process runs under a launcher (WORLD_SIZE set).</summary>
    public static bool UnderLauncher => Get("WORLD_SIZE") != null;
}
