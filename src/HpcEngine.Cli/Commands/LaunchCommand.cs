using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CommandLine;

namespace HpcEngine.Cli.Commands;

[Verb("launch", HelpText = "Start N workers with the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR ...): hpcengine launch --nproc-per-node N -- PROGRAM [ARGS...]")]
public sealed class LaunchOptions
{
    [Option("nproc-per-node", Required = true, HelpText = "Workers on this node.")]
    public int NprocPerNode { get; set; }

    [Option("nnodes", Default = 1, HelpText = "Nodes in the job.")]
    public int Nnodes { get; set; }

    [Option("node-rank", Default = 0, HelpText = "This node's index (0 hosts the store).")]
    public int NodeRank { get; set; }

    [Option("master-addr", Default = "127.0.0.1", HelpText = "Address of node 0 (where rank 0's store listens).")]
    public string MasterAddr { get; set; } = "127.0.0.1";

    [Option("master-port", Default = 0, HelpText = "Store port (0: a free port; required with several nodes).")]
    public int MasterPort { get; set; }

    [Option("max-restarts", Default = 0, HelpText = "Restart all workers up to this many times when one fails.")]
    public int MaxRestarts { get; set; }

    [Value(0, MetaName = "program", HelpText = "The program and its arguments, after --. 'hpcengine' runs this CLI.")]
    public IEnumerable<string> Command { get; set; } = [];
}

/// <summary>A small torchrun: starts the workers with the rendezvous variables set, prefixes their output with the
/// rank, and when one fails stops the others and exits with that rank's code (or restarts them all, up to
/// --max-restarts). Workers get HPCENGINE_NUM_THREADS = cores / workers and HPCENGINE_SPIN_US = 0 unless set, so
/// processes sharing cores do not oversubscribe them.</summary>
internal static class LaunchCommand
{
    public static int Run(LaunchOptions o)
    {
        var cmd = o.Command.ToList();
        if (cmd.Count == 0) throw new ArgumentException("launch: no program given (hpcengine launch --nproc-per-node N -- PROGRAM [ARGS...])");
        if (o.NprocPerNode < 1 || o.Nnodes < 1 || o.NodeRank < 0 || o.NodeRank >= o.Nnodes)
            throw new ArgumentException($"launch: --nproc-per-node and --nnodes must be positive and --node-rank in [0, {o.Nnodes})");
        if (o.Nnodes > 1 && o.MasterPort == 0) throw new ArgumentException("launch: --master-port is required with several nodes");
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        for (int attempt = 0; ; attempt++)
        {
            int port = o.MasterPort != 0 ? o.MasterPort : FreePort(o.MasterAddr);
            var (code, failedRank) = RunOnce(o, cmd, port, cancel.Token);
            if (code == 0) return 0;
            if (cancel.IsCancellationRequested)
            {
                Console.Error.WriteLine("[launcher] interrupted; workers stopped");
                return 130;
            }
            if (attempt < o.MaxRestarts)
            {
                Console.Error.WriteLine($"[launcher] rank {failedRank} failed with exit code {code}; restarting all workers ({attempt + 1}/{o.MaxRestarts})");
                continue;
            }
            Console.Error.WriteLine($"[launcher] rank {failedRank} failed with exit code {code}; the other workers were stopped");
            return code;
        }
    }

    private static int FreePort(string host)
    {
        var l = new TcpListener(IPAddress.TryParse(host, out var ip) ? ip : IPAddress.Loopback, 0);
        l.Start();
        int p = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }

    private static (int Code, int Rank) RunOnce(LaunchOptions o, List<string> cmd, int port, CancellationToken cancel)
    {
        int n = o.NprocPerNode, world = n * o.Nnodes;
        var procs = new Process[n];
        int threads = Math.Max(1, Environment.ProcessorCount / n);
        for (int local = 0; local < n; local++)
        {
            int rank = o.NodeRank * n + local;
            var psi = StartInfo(cmd);
            psi.Environment["RANK"] = rank.ToString(System.Globalization.CultureInfo.InvariantCulture);
            psi.Environment["WORLD_SIZE"] = world.ToString(System.Globalization.CultureInfo.InvariantCulture);
            psi.Environment["LOCAL_RANK"] = local.ToString(System.Globalization.CultureInfo.InvariantCulture);
            psi.Environment["LOCAL_WORLD_SIZE"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
            psi.Environment["MASTER_ADDR"] = o.MasterAddr;
            psi.Environment["MASTER_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (Environment.GetEnvironmentVariable("HPCENGINE_NUM_THREADS") == null) psi.Environment["HPCENGINE_NUM_THREADS"] = threads.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (Environment.GetEnvironmentVariable("HPCENGINE_SPIN_US") == null && n > 1) psi.Environment["HPCENGINE_SPIN_US"] = "0";
            var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
            string prefix = $"[{rank}] ";
            p.OutputDataReceived += (_, e) => { if (e.Data != null) Console.Out.WriteLine(prefix + e.Data); };
            p.ErrorDataReceived += (_, e) => { if (e.Data != null) Console.Error.WriteLine(prefix + e.Data); };
            p.Start();
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            procs[local] = p;
            Console.Error.WriteLine($"[launcher] rank {rank} started (pid {p.Id})");
        }
        try
        {
            var running = new HashSet<int>(Enumerable.Range(0, n));
            while (running.Count > 0)
            {
                if (cancel.IsCancellationRequested) { StopAll(procs); return (130, -1); }
                foreach (int i in running.ToArray())
                {
                    if (!procs[i].HasExited) continue;
                    procs[i].WaitForExit(); // drain the output
                    running.Remove(i);
                    int code = procs[i].ExitCode;
                    if (code != 0)
                    {
                        StopAll(procs);
                        return (code, o.NodeRank * n + i);
                    }
                }
                Thread.Sleep(20);
            }
            return (0, -1);
        }
        finally
        {
            foreach (var p in procs) p.Dispose();
        }
    }

    private static void StopAll(Process[] procs)
    {
        foreach (var p in procs)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        }
        foreach (var p in procs) p.WaitForExit(5000);
    }

    /// <summary>"hpcengine" means this CLI (run through the same dotnet host when it was started as a dll).</summary>
    internal static ProcessStartInfo StartInfo(List<string> cmd)
    {
        var psi = new ProcessStartInfo { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (cmd[0] == "hpcengine")
        {
            string host = Environment.ProcessPath!;
            if (Path.GetFileNameWithoutExtension(host) == "dotnet")
            {
                psi.FileName = host;
                psi.ArgumentList.Add(typeof(LaunchCommand).Assembly.Location);
            }
            else psi.FileName = host;
        }
        else psi.FileName = cmd[0];
        foreach (var a in cmd.Skip(1)) psi.ArgumentList.Add(a);
        return psi;
    }
}
