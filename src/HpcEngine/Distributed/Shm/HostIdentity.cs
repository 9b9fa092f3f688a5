namespace HpcEngine.Distributed.Shm;

/// <summary>Which machine this process runs on, as far as shared memory goes: the host name, the kernel's boot id
/// (two machines, or one machine rebooted, never share one) and the network namespace. The namespace is part of it
/// because a network namespace is how this project's tests make separate hosts on one machine, and because ranks
/// that cannot reach each other's loopback are, for the job, on different hosts. Two ranks with equal identities
/// may still see different /dev/shm (containers): the link upgrade then falls back to TCP.</summary>
internal static class HostIdentity
{
    private static readonly Lazy<string> Value = new(Compute);

    /// <summary>"hostname/boot-id/net:[inode]".</summary>
    public static string Current => Value.Value;

    private static string Compute()
    {
        string boot = TryRead("/proc/sys/kernel/random/boot_id") ?? "no-boot-id";
        string net;
        try
        {
            net = new FileInfo("/proc/self/ns/net").LinkTarget ?? "net:?";
        }
        catch (IOException)
        {
            net = "net:?";
        }
        catch (UnauthorizedAccessException)
        {
            net = "net:?";
        }
        return $"{Environment.MachineName}/{boot}/{net}";
    }

    private static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
