using System.Runtime.InteropServices;

namespace HpcEngine.Interop;

/// <summary>The POSIX calls of the core (libc), in one place: the launcher's signals and parent-death tie. Native
/// imports live only in Interop folders (an architecture test keeps it so).</summary>
internal static partial class Posix
{
    public const int PrSetPdeathsig = 1;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    public static partial int Prctl(int option, nint arg2, nint arg3, nint arg4, nint arg5);

    [LibraryImport("libc", EntryPoint = "getppid")]
    public static partial int GetParentPid();
}
