using HpcEngine.Interop;

namespace HpcEngine.Distributed.Launch;

/// <summary>The few POSIX calls the launcher needs that .NET does not expose: sending a signal other than SIGKILL,
/// and tying a worker's life to its launcher.</summary>
public static class ProcessControl
{
    /// <summary>POSIX signal numbers (Linux): hang-up, interrupt, kill, terminate, continue and stop.</summary>
    public const int SigHup = 1,
        SigInt = 2,
        SigKill = 9,
        SigTerm = 15,
        SigCont = 18,
        SigStop = 19;

    /// <summary>The variable the launcher sets to its pid, so an hpcengine worker can tie its life to it.</summary>
    public const string LauncherPidVariable = "HPCENGINE_LAUNCHER_PID";

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false when the process is gone.</summary>
    public static bool Signal(int pid, int signal) =>
        OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() ? Posix.Kill(pid, signal) == 0 : false;

    /// <summary>In a worker the launcher started (<see cref="LauncherPidVariable"/> set): asks the kernel to SIGKILL
    /// this process when the launcher dies (PR_SET_PDEATHSIG), so even a SIGKILLed launcher leaves no orphan behind,
    /// and exits at once if the launcher is already gone (the race between fork and this call). Linux only; a no-op
    /// elsewhere and outside a launcher.</summary>
    public static void DieWithLauncher(Func<string, string?>? getenv = null)
    {
        getenv ??= DistributedEnvironment.ProcessVariable;
        if (!OperatingSystem.IsLinux() || !int.TryParse(getenv(LauncherPidVariable), out int launcher))
            return;
        Posix.Prctl(Posix.PrSetPdeathsig, SigKill, 0, 0, 0);
        if (Posix.GetParentPid() != launcher)
        {
            Console.Error.WriteLine($"[hpcengine] the launcher (pid {launcher}) is gone; exiting");
            Environment.Exit(137);
        }
    }
}
