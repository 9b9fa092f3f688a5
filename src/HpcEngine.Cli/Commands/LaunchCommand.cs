using System.Diagnostics;
using System.Globalization;
using CommandLine;
using HpcEngine.Distributed.Launch;

namespace HpcEngine.Cli.Commands;

[Verb(
    "launch",
    HelpText = "Start this node's workers with the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR ...): hpcengine launch --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT] -- PROGRAM [ARGS...]"
)]
public sealed class LaunchOptions
{
    [Option(
        "nproc-per-node",
        HelpText = "Workers on this node: a number, or auto (one per GPU with --device cuda in the command, else one per core). Default 1."
    )]
    public string? NprocPerNode { get; set; }

    [Option(
        "nnodes",
        Default = "1",
        HelpText = "Nodes in the job, or MIN:MAX for an elastic job (with --elastic): nodes 0..MIN-1 start it, a node with --node-rank MIN or more joins it while it runs."
    )]
    public string Nnodes { get; set; } = "1";

    [Option("node-rank", Default = 0, HelpText = "This node's index (node 0 hosts the store).")]
    public int NodeRank { get; set; }

    [Option("master-addr", HelpText = "Address of node 0, where the store listens (default 127.0.0.1).")]
    public string? MasterAddr { get; set; }

    [Option("master-port", HelpText = "Store port (default: a free port on one node; required with several nodes).")]
    public int? MasterPort { get; set; }

    [Option(
        "rdzv-endpoint",
        HelpText = "HOST:PORT of the store (torchrun's spelling of --master-addr and --master-port)."
    )]
    public string? RdzvEndpoint { get; set; }

    [Option(
        "rdzv-id",
        HelpText = "Job id: the store refuses ranks of another job (default: random on one node; none across nodes)."
    )]
    public string? RdzvId { get; set; }

    [Option("standalone", HelpText = "One node, the store on loopback at a free port (torchrun's --standalone).")]
    public bool Standalone { get; set; }

    [Option(
        "local-addr",
        HelpText = "This node's address for the peer links (default: HPCENGINE_LOCAL_ADDR, else the interface that routes to the master)."
    )]
    public string? LocalAddr { get; set; }

    [Option("max-restarts", Default = 0, HelpText = "Restart all workers up to this many times when one fails.")]
    public int MaxRestarts { get; set; }

    [Option(
        "elastic",
        HelpText = "Elastic job: this launcher (node 0's) hosts the store, a failing worker does not stop the others, and hpcengine train workers re-form without it (HPCENGINE_ELASTIC=1)."
    )]
    public bool Elastic { get; set; }

    [Option(
        "grace-period",
        Default = 5.0,
        HelpText = "Seconds workers get to finish after a failure or a forwarded signal before SIGTERM, and again before SIGKILL."
    )]
    public double GracePeriod { get; set; }

    [Option("timeout", HelpText = "Collective timeout of the workers in seconds (HPCENGINE_TIMEOUT_S; default 600).")]
    public double? Timeout { get; set; }

    [Value(0, MetaName = "program", HelpText = "The program and its arguments, after --. 'hpcengine' runs this CLI.")]
    public IEnumerable<string> Command { get; set; } = [];
}

/// <summary>The `launch` verb: turns the flags into a <see cref="LaunchSpec"/> and runs the library's
/// <see cref="Launcher"/> (signals, grace periods, restarts and orphan protection live there).</summary>
internal static class LaunchCommand
{
    public static int Run(LaunchOptions o) => new Launcher(Spec(o), StartInfo).Run();

    /// <summary>"N" or torchrun's "MIN:MAX".</summary>
    private static (int Min, int Max) NodeRange(string text)
    {
        var parts = text.Split(':');
        int Parse(string p) =>
            int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
                ? v
                : throw new ArgumentException($"launch: --nnodes must be N or MIN:MAX, got '{text}'");
        return parts.Length switch
        {
            1 => (Parse(parts[0]), Parse(parts[0])),
            2 => (Parse(parts[0]), Parse(parts[1])),
            _ => throw new ArgumentException($"launch: --nnodes must be N or MIN:MAX, got '{text}'"),
        };
    }

    internal static LaunchSpec Spec(LaunchOptions o)
    {
        var cmd = o.Command.ToList();
        if (cmd.Count == 0)
            throw new ArgumentException(
                "launch: no program given (hpcengine launch --nproc-per-node N -- PROGRAM [ARGS...])"
            );
        var nodes = NodeRange(o.Nnodes);
        string addr = o.MasterAddr ?? "127.0.0.1";
        int port = o.MasterPort ?? 0;
        if (o.RdzvEndpoint != null)
        {
            if (o.MasterAddr != null || o.MasterPort != null)
                throw new ArgumentException("launch: give --rdzv-endpoint or --master-addr/--master-port, not both");
            int colon = o.RdzvEndpoint.LastIndexOf(':');
            if (
                colon <= 0
                || !int.TryParse(
                    o.RdzvEndpoint[(colon + 1)..],
                    NumberStyles.Integer,
                    CultureInfo.InvariantCulture,
                    out port
                )
            )
                throw new ArgumentException($"launch: --rdzv-endpoint must be HOST:PORT, got '{o.RdzvEndpoint}'");
            addr = o.RdzvEndpoint[..colon];
        }
        if (o.Standalone)
        {
            if (o.Nnodes != "1" || o.NodeRank != 0 || o.RdzvEndpoint != null || o.MasterAddr != null)
                throw new ArgumentException(
                    "launch: --standalone is one node with its own store: it does not combine with --nnodes, "
                        + "--node-rank, --rdzv-endpoint or --master-addr"
                );
            (addr, port) = ("127.0.0.1", 0);
        }
        if (!double.IsFinite(o.GracePeriod) || o.GracePeriod < 0)
            throw new ArgumentException($"launch: --grace-period must be 0 or more seconds, got {o.GracePeriod}");
        if (o.Timeout is { } t && !(t > 0 && double.IsFinite(t)))
            throw new ArgumentException($"launch: --timeout must be positive seconds, got {t}");
        return new LaunchSpec
        {
            Command = cmd,
            ProcsPerNode = ProcsPerNode(o.NprocPerNode, cmd),
            Nodes = nodes.Min,
            MaxNodes = nodes.Max,
            NodeRank = o.NodeRank,
            MasterAddr = addr,
            MasterPort = port,
            LocalAddr = o.LocalAddr,
            JobId = o.RdzvId,
            Token = CliEnvironment.Token,
            MaxRestarts = o.MaxRestarts,
            Elastic = o.Elastic,
            GracePeriod = TimeSpan.FromSeconds(o.GracePeriod),
            Timeout = o.Timeout is { } s ? TimeSpan.FromSeconds(s) : null,
        };
    }

    /// <summary>A number, or "auto": the GPUs when the command trains on cuda, else the cores (torchrun's
    /// rule).</summary>
    private static int ProcsPerNode(string? value, List<string> cmd)
    {
        if (value == null)
            return 1;
        if (value == "auto")
        {
            int i = cmd.IndexOf("--device");
            bool cuda =
                (i >= 0 && i + 1 < cmd.Count && cmd[i + 1].StartsWith("cuda", StringComparison.Ordinal))
                || cmd.Any(a => a.StartsWith("--device=cuda", StringComparison.Ordinal));
            if (!cuda)
                return Environment.ProcessorCount;
            var report = HpcEngine.Cuda.CudaDevices.Probe();
            return report.Devices.Count > 0
                ? report.Devices.Count
                : throw new ArgumentException(
                    $"launch: --nproc-per-node auto with --device cuda found no GPU ({report.Problem})"
                );
        }
        return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 1
            ? n
            : throw new ArgumentException($"launch: --nproc-per-node must be a positive number or auto, got '{value}'");
    }

    /// <summary>"hpcengine" means this CLI (run through the same dotnet host when it was started as a dll); other
    /// programs go through <see cref="Launcher.DefaultStartInfo"/>.</summary>
    internal static ProcessStartInfo StartInfo(IReadOnlyList<string> cmd)
    {
        if (cmd[0] != "hpcengine")
        {
            var other = Launcher.DefaultStartInfo(cmd);
            other.UseShellExecute = false;
            other.RedirectStandardOutput = other.RedirectStandardError = true;
            return other;
        }
        var psi = new ProcessStartInfo
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        string host = Environment.ProcessPath!;
        psi.FileName = host;
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
            psi.ArgumentList.Add(typeof(LaunchCommand).Assembly.Location);
        foreach (var a in cmd.Skip(1))
            psi.ArgumentList.Add(a);
        return psi;
    }
}
