using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace HpcEngine.Distributed.Launch;

/// <summary>A small torchrun: starts this node's workers with the rendezvous variables set, prefixes their output
/// with the rank, and supervises them.
/// <list type="bullet">
/// <item>A worker that fails: the others get <see cref="LaunchSpec.GracePeriod"/> to report (they see the dead peer
/// within a second or two and exit with their own error), then SIGTERM, then SIGKILL; the launcher then prints the
/// failing rank's last lines (its error and flight record) and exits with its code — or restarts every worker, up
/// to <see cref="LaunchSpec.MaxRestarts"/> times.</item>
/// <item>SIGTERM, SIGINT, SIGHUP to the launcher are forwarded to every worker, which get the grace period before
/// SIGKILL; the launcher exits with 128 + the signal.</item>
/// <item>A SIGKILLed launcher leaves no orphans: hpcengine workers set PR_SET_PDEATHSIG themselves
/// (<see cref="ProcessControl.DieWithLauncher"/>, from <see cref="ProcessControl.LauncherPidVariable"/>), other
/// programs are started through util-linux's <c>setpriv --pdeathsig KILL</c> where it exists. The kernel sends the
/// signal when the thread that forked the worker exits, so workers are started from the thread that calls
/// <see cref="Run"/> and stays in it until they are gone.</item>
/// </list>
/// Workers get HPCENGINE_NUM_THREADS = cores / workers and HPCENGINE_SPIN_US = 0 unless set, so processes sharing
/// cores do not oversubscribe them.</summary>
public sealed partial class Launcher
{
    private const int TailLines = 40;
    private readonly LaunchSpec _spec;
    private readonly Func<IReadOnlyList<string>, ProcessStartInfo> _startInfo;
    private readonly TextWriter _out,
        _err;
    private volatile int _signal;
    private int _attempt; // which start of the whole job this is (0: the first; each fallback or restart adds 1)

    /// <param name="spec">What to start.</param> <param name="startInfo">Turns the command into a start info (the CLI
    /// maps "hpcengine" to itself); default: the command's first word is the program.</param> <param
    /// name="stdout">Where the workers' prefixed standard output goes (default: Console.Out).</param> <param
    /// name="stderr">Where their standard error and the launcher's own lines go (default: Console.Error).</param>
    public Launcher(
        LaunchSpec spec,
        Func<IReadOnlyList<string>, ProcessStartInfo>? startInfo = null,
        TextWriter? stdout = null,
        TextWriter? stderr = null
    )
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        _spec = spec;
        _startInfo = startInfo ?? DefaultStartInfo;
        _out = stdout ?? Console.Out;
        _err = stderr ?? Console.Error;
    }

    /// <summary>Runs the workers to the end; returns 0, the failing worker's exit code, or 128 + a forwarded
    /// signal.</summary>
    public int Run()
    {
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal);
        string? token = _spec.Token;
        if (token == null && _spec.MaxNodes == 1)
            token = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));
        if (token == null)
            Say(
                "warning: no HPCENGINE_TOKEN: the store and links of this multi-node job are not authenticated; set "
                    + "the same secret on every node"
            );
        string? job = _spec.JobId
            ?? (
                _spec.MaxNodes == 1
                    ? "job-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant()
                    : null
            );
        for (int attempt = 0; ; attempt++)
        {
            int port = _spec.MasterPort != 0 ? _spec.MasterPort : LaunchSpec.FreePort(_spec.MasterAddr);
            _attempt = attempt;
            var (code, failedRank) = RunOnce(port, token, job);
            if (code == 0)
                return 0;
            if (_signal != 0)
            {
                Say($"interrupted by signal {_signal}; workers stopped");
                return 128 + _signal;
            }
            if (attempt < _spec.MaxRestarts)
            {
                Say(
                    code == Elastic.ElasticStateLostException.ExitCode
                        ? $"the job's state is lost (rank {failedRank}): falling back to the last checkpoint, "
                            + $"restarting every worker ({attempt + 1}/{_spec.MaxRestarts})"
                        : $"rank {failedRank} failed with exit code {code}; restarting all workers "
                            + $"({attempt + 1}/{_spec.MaxRestarts})"
                );
                continue;
            }
            Say($"rank {failedRank} failed with exit code {code}; the other workers were stopped");
            return code;
        }
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // the launcher stops its workers first, then exits
        _signal = context.Signal switch
        {
            PosixSignal.SIGTERM => ProcessControl.SigTerm,
            PosixSignal.SIGINT => ProcessControl.SigInt,
            PosixSignal.SIGHUP => ProcessControl.SigHup,
            _ => ProcessControl.SigTerm,
        };
    }

    private void Say(string line)
    {
        lock (_err)
            _err.WriteLine("[launcher] " + line);
    }

    private sealed class Worker(int rank, Process process)
    {
        public int Rank { get; } = rank;
        public Process Process { get; } = process;
        public Queue<string> Tail { get; } = new();

        /// <summary>Set when the worker's stdout and stderr reach end of stream.</summary>
        public CountdownEvent OutputClosed { get; } = new(2);
    }

    private (int Code, int Rank) RunOnce(int port, string? token, string? job)
    {
        int n = _spec.ProcsPerNode;
        var workers = new List<Worker>();
        int threads = Math.Max(1, Environment.ProcessorCount / n);
        // An elastic job's store lives here, not in rank 0's process: the job must outlive any worker.
        using var store =
            _spec.Elastic && _spec.NodeRank == 0
                ? TcpStore.Create(
                    _spec.MasterAddr,
                    port,
                    isServer: true,
                    new StoreOptions { Token = token, JobId = job }
                )
                : null;
        try
        {
            for (int local = 0; local < n; local++)
                workers.Add(Start(_spec.NodeRank * n + local, local, port, token, job, threads));
            // An elastic job replaces a failed worker, up to --max-restarts times, with one that joins the running job.
            int restarts = 0;
            Worker? Replace(Worker failed)
            {
                if (!_spec.Elastic || restarts >= _spec.MaxRestarts || _signal != 0)
                    return null;
                restarts++;
                int local = failed.Rank - _spec.NodeRank * n;
                var w = Start(failed.Rank, local, port, token, job, threads, joining: true);
                workers.Add(w);
                return w;
            }
            return Supervise(workers, Replace);
        }
        finally
        {
            StopAll(workers, 0);
            foreach (var w in workers)
            {
                w.Process.Dispose();
                w.OutputClosed.Dispose();
            }
        }
    }

    private Worker Start(int rank, int local, int port, string? token, string? job, int threads, bool joining = false)
    {
        var psi = _startInfo(_spec.Command);
        psi.UseShellExecute = false;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        string Str(int v) => v.ToString(CultureInfo.InvariantCulture);
        var env = psi.Environment;
        foreach (var (k, v) in _spec.Environment)
            env[k] = v;
        env["RANK"] = Str(rank);
        // A joiner's rank is only a name (its member id comes from the store): keep it inside the world it names.
        env["WORLD_SIZE"] = Str(
            joining || _spec.JoinsRunningJob ? _spec.ProcsPerNode * _spec.MaxNodes : _spec.WorldSize
        );
        env["LOCAL_RANK"] = Str(local);
        env["LOCAL_WORLD_SIZE"] = Str(_spec.ProcsPerNode);
        env["GROUP_RANK"] = Str(_spec.NodeRank);
        env["MASTER_ADDR"] = _spec.MasterAddr;
        env["MASTER_PORT"] = Str(port);
        env[ProcessControl.LauncherPidVariable] = Str(Environment.ProcessId);
        env["HPCENGINE_RESTART_COUNT"] = Str(_attempt); // torchrun's TORCHELASTIC_RESTART_COUNT
        if (token != null)
            env["HPCENGINE_TOKEN"] = token;
        if (job != null)
            env["HPCENGINE_JOB_ID"] = job;
        if (_spec.LocalAddr != null)
            env["HPCENGINE_LOCAL_ADDR"] = _spec.LocalAddr;
        if (_spec.Timeout is { } t)
            env["HPCENGINE_TIMEOUT_S"] = t.TotalSeconds.ToString(CultureInfo.InvariantCulture);
        if (_spec.Elastic)
        {
            env["HPCENGINE_ELASTIC"] = "1";
            env["HPCENGINE_STORE_HOSTED"] = "1";
            if (joining || _spec.JoinsRunningJob)
                env["HPCENGINE_ELASTIC_JOIN"] = "1";
        }
        if (!env.ContainsKey("HPCENGINE_NUM_THREADS") || env["HPCENGINE_NUM_THREADS"] == null)
            env["HPCENGINE_NUM_THREADS"] = Str(threads);
        if ((!env.ContainsKey("HPCENGINE_SPIN_US") || env["HPCENGINE_SPIN_US"] == null) && _spec.ProcsPerNode > 1)
            env["HPCENGINE_SPIN_US"] = "0";
        var p = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var w = new Worker(rank, p);
        string prefix = $"[{rank}] ";
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data == null)
                w.OutputClosed.Signal();
            else
                lock (_out)
                    _out.WriteLine(prefix + e.Data);
        };
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data == null)
            {
                w.OutputClosed.Signal();
                return;
            }
            lock (_err)
                _err.WriteLine(prefix + e.Data);
            lock (w.Tail)
            {
                w.Tail.Enqueue(e.Data);
                if (w.Tail.Count > TailLines)
                    w.Tail.Dequeue();
            }
        };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        Say($"rank {rank} started (pid {p.Id})");
        return w;
    }

    private (int Code, int Rank) Supervise(List<Worker> workers, Func<Worker, Worker?> replace)
    {
        var running = new List<Worker>(workers);
        (int Code, int Rank)? firstLoss = null;
        bool someCompleted = false;
        while (running.Count > 0)
        {
            if (_signal != 0)
            {
                Say(
                    $"signal {_signal}: forwarding it to the workers (grace {_spec.GracePeriod.TotalSeconds:F0}s, then "
                        + $"SIGKILL)"
                );
                StopAll(workers, _signal);
                return (128 + _signal, -1);
            }
            foreach (var w in running.ToArray())
            {
                if (!w.Process.HasExited)
                    continue;
                Drain(w);
                running.Remove(w);
                int code = w.Process.ExitCode;
                someCompleted |= code == 0;
                if (code == 0)
                    continue;
                if (_spec.Elastic && code == Elastic.ElasticStateLostException.ExitCode)
                {
                    // No survivor holds the lost state: the job can only go on from its checkpoint, all of it anew.
                    Say($"rank {w.Rank}: the job's state is lost with the ranks it lost; stopping every worker");
                    StopAll(workers, ProcessControl.SigTerm);
                    return (code, w.Rank);
                }
                if (_spec.Elastic)
                {
                    // The others re-form without it (their own errors say so); the job goes on.
                    Say($"rank {w.Rank} exited with code {code}; elastic job: the others go on without it");
                    firstLoss ??= (code, w.Rank);
                    if (replace(w) is { } joiner)
                    {
                        Say(
                            $"started a replacement for rank {w.Rank} (pid {joiner.Process.Id}): it joins the running job"
                        );
                        running.Add(joiner);
                    }
                    continue;
                }
                Say(
                    $"rank {w.Rank} exited with code {code}; the others get {_spec.GracePeriod.TotalSeconds:F0}s to "
                        + $"finish before they are stopped"
                );
                WaitForExit(running, _spec.GracePeriod);
                StopAll(workers, ProcessControl.SigTerm);
                Report(w, code, workers);
                return (code, w.Rank);
            }
            Thread.Sleep(20);
        }
        return someCompleted || firstLoss == null ? (0, -1) : firstLoss.Value;
    }

    /// <summary>The failing rank's last lines (its error, the flight recorder's entries) and how every rank
    /// ended.</summary>
    private void Report(Worker failed, int code, List<Worker> workers)
    {
        string[] tail;
        lock (failed.Tail)
            tail = failed.Tail.ToArray();
        var sb = new System.Text.StringBuilder();
        sb.AppendLine(
            $"[launcher] rank {failed.Rank} failed first (exit code {code}); its last {tail.Length} line(s) of "
                + $"standard error:"
        );
        foreach (var l in tail)
            sb.AppendLine($"[launcher]   | {l}");
        sb.Append("[launcher] exit codes: ")
            .AppendJoin(
                ", ",
                workers.Select(w =>
                    $"rank {w.Rank} {(w.Process.HasExited ? w.Process.ExitCode.ToString(CultureInfo.InvariantCulture) : "running")}"
                )
            );
        lock (_err)
            _err.WriteLine(sb.ToString());
    }

    /// <summary>The command as is; programs other than the engine's own run under <c>setpriv --pdeathsig KILL</c>
    /// where util-linux has it, so they die with the launcher too.</summary>
    public static ProcessStartInfo DefaultStartInfo(IReadOnlyList<string> command)
    {
        ArgumentNullException.ThrowIfNull(command);
        var psi = new ProcessStartInfo();
        int first = 0;
        if (OperatingSystem.IsLinux() && SetPriv is { } setpriv)
        {
            psi.FileName = setpriv;
            psi.ArgumentList.Add("--pdeathsig");
            psi.ArgumentList.Add("KILL");
            psi.ArgumentList.Add("--");
        }
        else
        {
            psi.FileName = command[0];
            first = 1;
        }
        foreach (var a in command.Skip(first))
            psi.ArgumentList.Add(a);
        return psi;
    }

    private static readonly string? SetPriv = new[] { "/usr/bin/setpriv", "/bin/setpriv" }.FirstOrDefault(File.Exists);
}
