using System.Runtime.InteropServices;

namespace HpcEngine.Interop;

/// <summary>Linux futexes on shared memory (not FUTEX_PRIVATE: the word lives in a mapping that several processes
/// share), the wake-up of the shared-memory transport: a waiter sleeps in the kernel instead of spinning, so ranks
/// that outnumber the cores do not starve each other.</summary>
internal static unsafe partial class Futex
{
    private const int FutexWait = 0,
        FutexWake = 1;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    // syscall(2) is variadic; on x86-64 and arm64 Linux its integer arguments travel in the same registers as a
    // fixed-argument call's, so a fixed signature is safe there.
    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(
        long number,
        int* address,
        int op,
        int value,
        Timespec* timeout,
        nint address2,
        int value3
    );

    private static long SysFutex =>
        RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 202,
            Architecture.Arm64 => 98,
            var a => throw new PlatformNotSupportedException(
                $"the shared-memory transport knows the futex syscall of x64 and arm64 Linux, not {a}: set "
                    + $"HPCENGINE_TRANSPORT=tcp"
            ),
        };

    /// <summary>Sleeps while <c>*address == expected</c>, at most <paramref name="microseconds"/>; returns early on a
    /// wake, a signal or when the word has already changed (callers re-check their condition either way).</summary>
    public static void Wait(int* address, int expected, long microseconds)
    {
        microseconds = Math.Max(1, microseconds);
        var t = new Timespec { Seconds = microseconds / 1_000_000, Nanoseconds = microseconds % 1_000_000 * 1000 };
        Syscall(SysFutex, address, FutexWait, expected, &t, 0, 0);
    }

    /// <summary>Wakes every thread (of any process) sleeping on <paramref name="address"/>.</summary>
    public static void WakeAll(int* address) => Syscall(SysFutex, address, FutexWake, int.MaxValue, null, 0, 0);
}
