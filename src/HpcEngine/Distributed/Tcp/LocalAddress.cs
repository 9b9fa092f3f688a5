using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace HpcEngine.Distributed.Tcp;

/// <summary>Which of this host's addresses a rank binds its peer listener on and advertises to the others. In this
/// order: an explicit address (HPCENGINE_LOCAL_ADDR, <c>launch --local-addr</c>) — it must be one of this host's;
/// loopback when the store is on loopback (a one-host run: 127.0.0.1, localhost); this host's first non-loopback IPv4
/// address when MASTER_ADDR is a name that resolves to loopback here (Debian and Ubuntu map the host's own name to
/// 127.0.1.1: that is node 0 naming itself, and its peers on other hosts could not reach a loopback address); else the
/// source address the kernel's routing table picks for MASTER_ADDR (a UDP socket "connected" to it: no packet is sent),
/// which is the interface the other hosts reach this one on in the usual one-subnet cluster. Clouds with several
/// interfaces (a management and a fast network) set the override per node.</summary>
public static class LocalAddress
{
    /// <summary>The address to bind and advertise for a job whose store is at <paramref name="masterAddr"/>.</summary>
    public static string Choose(string masterAddr, string? overrideAddr = null)
    {
        ArgumentNullException.ThrowIfNull(masterAddr);
        if (!string.IsNullOrWhiteSpace(overrideAddr))
            return CheckLocal(overrideAddr.Trim());
        var master = Resolve(masterAddr);
        if (IPAddress.IsLoopback(master))
            return IsName(masterAddr) && masterAddr != "localhost" && FirstExternal() is { } own
                ? own.ToString()
                : IPAddress.Loopback.ToString();
        if (IsLocal(master))
            return master.ToString(); // this host is node 0: its store address reaches it
        return RouteTo(master).ToString();
    }

    /// <summary>The source address the routing table gives for packets to <paramref name="target"/>.</summary>
    public static IPAddress RouteTo(IPAddress target)
    {
        ArgumentNullException.ThrowIfNull(target);
        using var probe = new Socket(target.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            probe.Connect(target, 9); // UDP connect only selects a route; nothing goes on the wire
        }
        catch (SocketException e)
        {
            throw new InvalidOperationException(
                $"no route from this host to MASTER_ADDR {target} ({e.SocketErrorCode}): check the address, or set "
                    + $"HPCENGINE_LOCAL_ADDR (launch --local-addr) to this host's address on the job's network",
                e
            );
        }
        return ((IPEndPoint)probe.LocalEndPoint!).Address;
    }

    /// <summary>True for a host name (not an IPv4 or IPv6 literal).</summary>
    public static bool IsName(string host) => !IPAddress.TryParse(host, out _);

    /// <summary>This host's first IPv4 address on an interface that is up and not loopback, or null.</summary>
    private static IPAddress? FirstExternal() =>
        NetworkInterface
            .GetAllNetworkInterfaces()
            .Where(i =>
                i.OperationalStatus is OperationalStatus.Up or OperationalStatus.Unknown
                && i.NetworkInterfaceType != NetworkInterfaceType.Loopback
            )
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Select(u => u.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));

    private static IPAddress Resolve(string host)
    {
        if (IPAddress.TryParse(host, out var ip))
            return ip;
        try
        {
            return Dns.GetHostAddresses(host).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
                ?? throw new InvalidOperationException($"MASTER_ADDR '{host}' has no IPv4 address");
        }
        catch (SocketException e)
        {
            throw new InvalidOperationException($"MASTER_ADDR '{host}' does not resolve: {e.Message}", e);
        }
    }

    private static bool IsLocal(IPAddress a) =>
        NetworkInterface
            .GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Any(u => u.Address.Equals(a));

    private static string CheckLocal(string addr)
    {
        var a = Resolve(addr);
        if (!IPAddress.IsLoopback(a) && !IsLocal(a))
            throw new InvalidOperationException(
                $"HPCENGINE_LOCAL_ADDR (--local-addr) {addr} is not an address of this host: give one of {string.Join(", ", LocalAddresses())}"
            );
        return a.ToString();
    }

    /// <summary>This host's IPv4 addresses (for error messages).</summary>
    public static IEnumerable<string> LocalAddresses() =>
        NetworkInterface
            .GetAllNetworkInterfaces()
            .SelectMany(i => i.GetIPProperties().UnicastAddresses)
            .Where(u => u.Address.AddressFamily == AddressFamily.InterNetwork)
            .Select(u => u.Address.ToString());
}
