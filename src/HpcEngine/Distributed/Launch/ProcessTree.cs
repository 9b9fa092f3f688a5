using System.Globalization;

namespace HpcEngine.Distributed.Launch;

/// <summary>A process's descendants, read from /proc: what the launcher must stop besides the worker itself (a shell
/// worker's children survive its death and would keep running — and keep its output pipes open). Each entry carries
/// the process's start time, so a pid reused by an unrelated process later is never signalled.</summary>
internal static class ProcessTree
{
    public readonly record struct Member(int Pid, long StartTicks);

    /// <summary>Every live descendant of <paramref name="root"/> (children, their children ...); empty off
    /// Linux.</summary>
    public static List<Member> Descendants(int root)
    {
        var result = new List<Member>();
        if (!OperatingSystem.IsLinux())
            return result;
        var children = new Dictionary<int, List<Member>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                continue;
            if (Stat(pid) is not var (ppid, start))
                continue;
            if (!children.TryGetValue(ppid, out var list))
                children[ppid] = list = new();
            list.Add(new Member(pid, start));
        }
        var queue = new Queue<int>([root]);
        while (queue.TryDequeue(out int p))
            if (children.TryGetValue(p, out var kids))
                foreach (var k in kids)
                {
                    result.Add(k);
                    queue.Enqueue(k.Pid);
                }
        return result;
    }

    /// <summary>SIGKILLs each member still alive with the same start time.</summary>
    public static void KillSurvivors(IEnumerable<Member> members)
    {
        foreach (var m in members)
            if (Stat(m.Pid) is var (_, start) && start == m.StartTicks)
                ProcessControl.Signal(m.Pid, ProcessControl.SigKill);
    }

    /// <summary>(parent pid, start time in clock ticks) from /proc/PID/stat, or null when the process is
    /// gone.</summary>
    private static (int Parent, long Start)? Stat(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
        // The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
        int close = text.LastIndexOf(')');
        if (close < 0)
            return null;
        var f = text[(close + 2)..].Split(' ');
        // After the name: state(3) ppid(4) ... starttime(22): indices 0, 1 ... 19 here.
        if (f.Length < 20 || f[0] == "Z")
            return null;
        return (int.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[19], CultureInfo.InvariantCulture));
    }
}
