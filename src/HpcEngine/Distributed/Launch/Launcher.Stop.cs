using System.Diagnostics;

namespace HpcEngine.Distributed.Launch;

/// <summary>Stopping workers: waiting for them, signalling them and their descendants, draining their output.</summary>
public sealed partial class Launcher
{
    private static void WaitForExit(List<Worker> workers, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        foreach (var w in workers)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !w.Process.WaitForExit(left))
                return;
            Drain(w);
        }
    }

    /// <summary>Sends <paramref name="signal"/> (0: none) to the workers still running, waits the grace period, then
    /// SIGKILLs what is left of them and of their descendants as they were when the stop began (a shell's children
    /// outlive it), and waits for their output to end.</summary>
    private void StopAll(List<Worker> workers, int signal)
    {
        var alive = workers.Where(w => !HasExited(w)).ToList();
        if (alive.Count == 0)
            return;
        var descendants = alive.SelectMany(w => ProcessTree.Descendants(w.Process.Id)).ToList();
        if (signal != 0)
        {
            foreach (var w in alive)
                ProcessControl.Signal(w.Process.Id, signal);
            WaitForExit(alive, _spec.GracePeriod);
        }
        foreach (var w in alive.Where(w => !HasExited(w)))
        {
            Say($"rank {w.Rank} (pid {w.Process.Id}) still running: SIGKILL");
            try
            {
                w.Process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException) { }
        }
        ProcessTree.KillSurvivors(descendants);
        foreach (var w in alive)
            if (w.Process.WaitForExit(5000))
                Drain(w);
    }

    /// <summary>Waits (boundedly) for an exited worker's output to end, so its last lines — its error among them —
    /// are printed before the launcher reports.</summary>
    private static void Drain(Worker w) => w.OutputClosed.Wait(TimeSpan.FromSeconds(5));

    private static bool HasExited(Worker w)
    {
        try
        {
            return w.Process.HasExited;
        }
        catch (InvalidOperationException)
        {
            return true;
        }
    }
}
