using System.Diagnostics;

namespace HpcEngine.Tests.Distributed;

/// <summary>A multi-host test bed on one machine: one Linux network namespace per host, each with loopback up and an
/// interface (a veth pair) into a hub namespace whose bridge joins them, addressed from 198.18.0.0/24 (reserved for
/// network benchmarks, RFC 2544) — addresses that exist only inside these namespaces, so nothing outside the machine
/// is ever addressed. Processes run on a host through <c>ip netns exec</c>. A host's link can be taken down (a
/// partition) or shaped with tc tbf (bandwidth). Everything is removed on dispose, processes first. Needs root
/// (CAP_NET_ADMIN) and iproute2; <see cref="Create"/> skips the test with the reason otherwise.</summary>
internal sealed class NetworkHosts : IDisposable
{
    private static int _counter;
    private readonly string _prefix;
    private readonly List<TestSupport.CliProcess> _processes = new();
    private bool _disposed;
    private bool _createdEtcNetns;

    public int Count { get; }

    private NetworkHosts(int count)
    {
        Count = count;
        _prefix = $"hpc{Environment.ProcessId % 100000}x{Interlocked.Increment(ref _counter)}";
    }

    /// <summary>The namespace of host <paramref name="i"/>.</summary>
    public string Namespace(int i) => $"{_prefix}h{i}";

    private string Hub => $"{_prefix}hub";

    /// <summary>Host <paramref name="i"/>'s address.</summary>
    public static string Address(int i) => $"198.18.0.{i + 1}";

    /// <summary>Makes <paramref name="count"/> hosts, or ignores the calling test with the reason they cannot be
    /// made.</summary>
    public static NetworkHosts Create(int count)
    {
        if (!OperatingSystem.IsLinux())
            Assert.Ignore("network namespaces need Linux");
        if (Environment.UserName != "root" && Environment.GetEnvironmentVariable("USER") != "root" && !IsRoot())
            Assert.Ignore("network namespaces need root (CAP_NET_ADMIN); .ci/run runs the tests as root");
        if (!File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip"))
            Assert.Ignore("iproute2 (ip) is not installed; .ci/run installs it");
        var hosts = new NetworkHosts(count);
        try
        {
            hosts.Ip($"netns add {hosts.Hub}");
            hosts.Ip($"-n {hosts.Hub} link add br0 type bridge");
            hosts.Ip($"-n {hosts.Hub} link set br0 up");
            for (int i = 0; i < count; i++)
            {
                string ns = hosts.Namespace(i);
                hosts.Ip($"netns add {ns}");
                hosts.Ip($"-n {ns} link set lo up");
                hosts.Ip($"link add eth0 netns {ns} type veth peer name p{i} netns {hosts.Hub}");
                hosts.Ip($"-n {hosts.Hub} link set p{i} master br0");
                hosts.Ip($"-n {hosts.Hub} link set p{i} up");
                hosts.Ip($"-n {ns} addr add {Address(i)}/24 dev eth0");
                hosts.Ip($"-n {ns} link set eth0 up");
            }
        }
        catch (InvalidOperationException e)
        {
            hosts.Dispose();
            Assert.Ignore($"could not create network namespaces: {e.Message}");
        }
        return hosts;
    }

    private static bool IsRoot()
    {
        try
        {
            return File.ReadAllLines("/proc/self/status")
                .Any(l =>
                    l.StartsWith("Uid:", StringComparison.Ordinal)
                    && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == "0"
                );
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Runs `ip ARGS`; a failure is an InvalidOperationException with ip's message.</summary>
    public void Ip(string args)
    {
        var psi = new ProcessStartInfo("ip")
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var a in args.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"ip {args}: {err.Trim()}");
    }

    /// <summary>Starts `hpcengine ARGS` on host <paramref name="i"/> (killed at dispose if still running).</summary>
    public TestSupport.CliProcess Start(int i, IEnumerable<string> args, Dictionary<string, string>? env = null)
    {
        var p = new TestSupport.CliProcess(args, env, wrapper: ["ip", "netns", "exec", Namespace(i)]);
        lock (_processes)
            _processes.Add(p);
        return p;
    }

    /// <summary>Gives host <paramref name="i"/> its own /etc/hosts (<c>ip netns exec</c> bind-mounts
    /// /etc/netns/NS/hosts over /etc/hosts for the processes it starts): how a cluster's names resolve on each
    /// node.</summary>
    public void SetHosts(int i, string content)
    {
        _createdEtcNetns |= !Directory.Exists("/etc/netns");
        string dir = Path.Combine("/etc/netns", Namespace(i));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "hosts"), content);
    }

    /// <summary>Takes host <paramref name="i"/>'s link down (or up again): a partition — no FIN, no RST, just
    /// silence.</summary>
    public void SetLink(int i, bool up) => Ip($"-n {Namespace(i)} link set eth0 {(up ? "up" : "down")}");

    /// <summary>Caps host <paramref name="i"/>'s outgoing rate with a token bucket (tc tbf).</summary>
    public void Shape(int i, string rate) =>
        Ip($"netns exec {Namespace(i)} tc qdisc replace dev eth0 root tbf rate {rate} burst 64kb latency 50ms");

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        lock (_processes)
            foreach (var p in _processes)
                p.Dispose();
        for (int i = 0; i < Count; i++)
        {
            TryIp($"netns del {Namespace(i)}");
            try
            {
                if (Directory.Exists(Path.Combine("/etc/netns", Namespace(i))))
                    Directory.Delete(Path.Combine("/etc/netns", Namespace(i)), true);
            }
            catch (IOException) { }
        }
        TryIp($"netns del {Hub}"); // takes the bridge and the hub ends of the veth pairs with it
        try
        {
            if (_createdEtcNetns && !Directory.EnumerateFileSystemEntries("/etc/netns").Any())
                Directory.Delete("/etc/netns");
        }
        catch (IOException) { }
    }

    private void TryIp(string args)
    {
        try
        {
            Ip(args);
        }
        catch (InvalidOperationException) { }
    }
}
