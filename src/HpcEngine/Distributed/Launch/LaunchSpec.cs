using System.Net;
using System.Net.Sockets;

namespace HpcEngine.Distributed.Launch;

/// <summary>What <see cref="Launcher"/> starts: <see cref="ProcsPerNode"/> workers on this node, node
/// <see cref="NodeRank"/> of <see cref="Nodes"/>, rendezvousing at <see cref="MasterAddr"/>:<see cref="MasterPort"/>.
/// The workers get the torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT)
/// and HPCENGINE_JOB_ID, HPCENGINE_TOKEN, HPCENGINE_LOCAL_ADDR, HPCENGINE_TIMEOUT_S where set.</summary>
public sealed record LaunchSpec
{
    /// <summary>The worker command: a program and its arguments ("hpcengine" is the running CLI, see <see
    /// cref="Launcher"/>).</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>Worker processes on this node (<c>--nproc-per-node</c>).</summary>
    public int ProcsPerNode { get; init; } = 1;

    /// <summary>Nodes in the job (<c>--nnodes</c>); in an elastic job (<c>--nnodes MIN:MAX</c>), the MIN nodes that
    /// start it.</summary>
    public int Nodes { get; init; } = 1;

    /// <summary>The most nodes an elastic job may grow to (<c>--nnodes MIN:MAX</c>); equal to <see cref="Nodes"/>
    /// otherwise (0 reads as <see cref="Nodes"/>). A node with <see cref="NodeRank"/> ≥ <see cref="Nodes"/> starts
    /// its workers as joiners of the running job.</summary>
    public int MaxNodes
    {
        get => _maxNodes == 0 ? Nodes : _maxNodes;
        init => _maxNodes = value;
    }

    private readonly int _maxNodes;

    /// <summary>Whether this node's workers join a running job instead of starting it.</summary>
    public bool JoinsRunningJob => Elastic && NodeRank >= Nodes;

    /// <summary>This node's index, 0 for the node that serves the store (<c>--node-rank</c>).</summary>
    public int NodeRank { get; init; }

    /// <summary>Where the store is served: node 0's address or name (<c>--master-addr</c>).</summary>
    public string MasterAddr { get; init; } = "127.0.0.1";

    /// <summary>The store port; 0 picks a free one (one node only).</summary>
    public int MasterPort { get; init; }

    /// <summary>This node's address for the peer links (HPCENGINE_LOCAL_ADDR of the workers); null: chosen by
    /// route.</summary>
    public string? LocalAddr { get; init; }

    /// <summary>The job id (torchrun's --rdzv-id). Null: a random one on one node; none with several nodes (their
    /// launchers could not agree on a random one), where the store then accepts any job's ranks.</summary>
    public string? JobId { get; init; }

    /// <summary>The shared secret of the store and links. Null: a random one per job on one node (authenticated by
    /// default); with several nodes, HPCENGINE_TOKEN must be set to the same secret on every node to
    /// authenticate.</summary>
    public string? Token { get; init; }

    /// <summary>Restart every worker up to this many times when one fails.</summary>
    public int MaxRestarts { get; init; }

    /// <summary>An elastic job (<c>launch --elastic</c>): node 0's launcher hosts the store (so it outlives any worker),
    /// workers run with HPCENGINE_ELASTIC=1 and HPCENGINE_STORE_HOSTED=1, and a worker that fails does not stop the
    /// others — they re-form without it. The launcher exits 0 when some worker completed.</summary>
    public bool Elastic { get; init; }

    /// <summary>How long workers get to finish on their own after a failure or a forwarded signal before they are
    /// sent SIGTERM, and then as long again before SIGKILL.</summary>
    public TimeSpan GracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The workers' collective timeout (HPCENGINE_TIMEOUT_S); null leaves theirs.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Extra environment for every worker.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Ranks in the whole job: workers per node × nodes.</summary>
    public int WorldSize => ProcsPerNode * Nodes;

    /// <summary>Checks the spec, naming the first bad field as its CLI flag.</summary>
    public void Validate()
    {
        if (Command.Count == 0)
            throw new ArgumentException(
                "launch: no program given (hpcengine launch --nproc-per-node N -- PROGRAM [ARGS...])"
            );
        if (ProcsPerNode < 1)
            throw new ArgumentException($"launch: --nproc-per-node must be at least 1, got {ProcsPerNode}");
        if (Nodes < 1)
            throw new ArgumentException($"launch: --nnodes must be at least 1, got {Nodes}");
        if (MaxNodes < Nodes)
            throw new ArgumentException($"launch: --nnodes MIN:MAX needs MIN ≤ MAX, got {Nodes}:{MaxNodes}");
        if (MaxNodes > Nodes && !Elastic)
            throw new ArgumentException("launch: --nnodes MIN:MAX is an elastic job: add --elastic");
        if (NodeRank < 0 || NodeRank >= MaxNodes)
            throw new ArgumentException($"launch: --node-rank must be in [0, {MaxNodes}), got {NodeRank}");
        if (MasterPort is < 0 or > 65535)
            throw new ArgumentException($"launch: --master-port must be in 0..65535, got {MasterPort}");
        if (MaxNodes > 1 && MasterPort == 0)
            throw new ArgumentException(
                "launch: --master-port (or --rdzv-endpoint HOST:PORT) is required with several nodes: every node must "
                    + "name the same store port"
            );
        if (MaxRestarts < 0)
            throw new ArgumentException($"launch: --max-restarts must be 0 or more, got {MaxRestarts}");
        if (GracePeriod < TimeSpan.Zero)
            throw new ArgumentException(
                $"launch: --grace-period must be 0 or more seconds, got {GracePeriod.TotalSeconds}"
            );
        if (Timeout is { } t && !(t > TimeSpan.Zero))
            throw new ArgumentException($"launch: --timeout must be positive seconds, got {t.TotalSeconds}");
        if (string.IsNullOrWhiteSpace(MasterAddr))
            throw new ArgumentException("launch: --master-addr is empty");
    }

    /// <summary>A free TCP port on <paramref name="host"/> (for one-node jobs without a given port).</summary>
    public static int FreePort(string host)
    {
        var l = new TcpListener(IPAddress.TryParse(host, out var ip) ? ip : IPAddress.Loopback, 0);
        l.Start();
        int p = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }
}
