using System.Diagnostics;
using System.Globalization;

namespace HpcEngine.Tests.Distributed;

/// <summary>A real single-node Slurm (Debian's slurm-wlm) for the tests: its own munged (private key and socket),
/// slurmctld and slurmd in the foreground as children of the test, on free ports, with a config in a temporary
/// directory, so nothing of the machine's own setup is used or changed. Everything is stopped and removed on
/// dispose. <see cref="Start"/> ignores the test with the reason where Slurm or munge is missing or not root.</summary>
internal sealed class SlurmCluster : IDisposable
{
    private readonly string _dir;
    private readonly List<Process> _daemons = new();

    public string Config => Path.Combine(_dir, "slurm.conf");

    private SlurmCluster(string dir) => _dir = dir;

    private static string? Which(string name) =>
        new[] { "/usr/sbin", "/usr/bin", "/sbin", "/bin" }
            .Select(d => Path.Combine(d, name))
            .FirstOrDefault(File.Exists);

    public static SlurmCluster Start()
    {
        foreach (var tool in new[] { "slurmctld", "slurmd", "srun", "sinfo", "munged" })
            if (Which(tool) == null)
                Assert.Ignore($"Slurm is not installed ({tool} missing): .ci/run installs slurm-wlm and munge");
        if (
            !File.ReadAllText("/proc/self/status")
                .Split('\n')
                .Any(l =>
                    l.StartsWith("Uid:", StringComparison.Ordinal)
                    && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == "0"
                )
        )
            Assert.Ignore(
                "a private Slurm needs root (slurmd runs jobs as their user); .ci/run runs the tests as root"
            );
        var c = new SlurmCluster(TestSupport.TempDir("hpc-slurm-"));
        try
        {
            c.Boot();
            return c;
        }
        catch
        {
            c.Dispose();
            throw;
        }
    }

    private void Boot()
    {
        string key = Path.Combine(_dir, "munge.key"),
            sock = Path.Combine(_dir, "munge.sock");
        File.WriteAllBytes(key, System.Security.Cryptography.RandomNumberGenerator.GetBytes(1024));
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Daemon(
            "munged",
            "--foreground",
            $"--socket={sock}",
            $"--key-file={key}",
            $"--pid-file={_dir}/munged.pid",
            $"--log-file={_dir}/munged.log",
            $"--seed-file={_dir}/munged.seed",
            "--force"
        );
        WaitFor(() => File.Exists(sock), "munged");
        string host = Run("hostname", "-s").Trim();
        int ctld = TestSupport.FreePort(),
            slurmd = TestSupport.FreePort();
        Directory.CreateDirectory(Path.Combine(_dir, "ctld"));
        Directory.CreateDirectory(Path.Combine(_dir, "d"));
        File.WriteAllText(
            Config,
            string.Join(
                '\n',
                "ClusterName=hpctest",
                $"SlurmctldHost={host}(127.0.0.1)",
                $"SlurmctldPort={ctld}",
                $"SlurmdPort={slurmd}",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                $"AuthInfo=socket={sock}",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "MpiDefault=none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "ReturnToService=2",
                "SlurmUser=root",
                "SlurmdUser=root",
                $"StateSaveLocation={_dir}/ctld",
                $"SlurmdSpoolDir={_dir}/d",
                $"SlurmctldPidFile={_dir}/ctld.pid",
                $"SlurmdPidFile={_dir}/d.pid",
                $"SlurmctldLogFile={_dir}/ctld.log",
                $"SlurmdLogFile={_dir}/d.log",
                "JobAcctGatherType=jobacct_gather/none",
                $"NodeName={host} NodeAddr=127.0.0.1 CPUs={System.Environment.ProcessorCount} RealMemory=2000 "
                    + $"State=UNKNOWN",
                "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4",
                ""
            )
        );
        Daemon("slurmctld", "-D", "-f", Config);
        Daemon("slurmd", "-D", "-f", Config);
        WaitFor(() => Run("sinfo", "-h", "-o", "%T").Trim() is "idle" or "mixed", "the Slurm node to come up");
    }

    /// <summary>The environment that points Slurm's clients (srun, sinfo) at this cluster.</summary>
    public Dictionary<string, string> Environment => new() { ["SLURM_CONF"] = Config };

    /// <summary>Runs a Slurm client command against this cluster; returns its standard output (and its standard error
    /// when it fails).</summary>
    public string Run(string program, params string[] args) => Execute(program, args, alwaysErrors: false);

    /// <summary>As <see cref="Run"/>, with standard error always appended (sbatch --test-only answers there).</summary>
    public string RunWithErrors(string program, params string[] args) => Execute(program, args, alwaysErrors: true);

    private string Execute(string program, string[] args, bool alwaysErrors)
    {
        var psi = new ProcessStartInfo(Which(program) ?? program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["SLURM_CONF"] = Config;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string outp = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return outp + (p.ExitCode != 0 || alwaysErrors ? err.Result : "");
    }

    private void Daemon(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(Which(program)!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["SLURM_CONF"] = Config;
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _daemons.Add(p);
    }

    private void WaitFor(Func<bool> ready, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!ready())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail(
                    $"{what} did not come up within 30s; logs: {string.Join(" | ", Directory.GetFiles(_dir, "*.log").Select(f => Path.GetFileName(f) + ": " + string.Join(" / ", File.ReadLines(f).TakeLast(3))))}"
                );
            if (_daemons.FirstOrDefault(d => d.HasExited) is { } dead)
                Assert.Fail(
                    $"{what}: a daemon exited with code {dead.ExitCode.ToString(CultureInfo.InvariantCulture)}; logs "
                        + $"in {_dir}"
                );
            Thread.Sleep(200);
        }
    }

    public void Dispose()
    {
        foreach (var d in Enumerable.Reverse(_daemons))
        {
            try
            {
                if (!d.HasExited)
                    d.Kill(entireProcessTree: true);
                d.WaitForExit(5000);
            }
            catch (InvalidOperationException) { }
            d.Dispose();
        }
        try
        {
            Directory.Delete(_dir, true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
