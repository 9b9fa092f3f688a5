namespace HpcEngine.Backends.Cpu;

/// <summary>How many threads CPU kernels split large work over (default: all cores), and the helper that splits it.
/// Work below <see cref="MinParallelWork"/> elements runs on the calling thread: on small tensors a thread hop costs
/// more than it saves.</summary>
internal static class CpuThreads
{
    private static int _count = Environment.ProcessorCount;

    /// <summary>Threads used by CPU kernels; a documented default, settable (e.g. HPCENGINE_NUM_THREADS).</summary>
    public static int Count
    {
        get => _count;
        set => _count = Math.Clamp(value, 1, ForkJoinPool.Shared.Width);
    }

    /// <summary>Elements of work below which kernels stay single-threaded.</summary>
    public const int MinParallelWork = 1 << 15;

    static CpuThreads()
    {
        if (EngineOptions.Process.Threads is int n)
            _count = Math.Min(n, Environment.ProcessorCount);
    }

    /// <summary>Runs body(start, end) over [0, count) in up to <see cref="Count"/> contiguous ranges when
    /// <paramref name="work"/> (total elements touched) is large enough to pay for threads.</summary>
    public static void For(int count, long work, Action<int, int> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        int threads = Math.Min(Count, count);
        if (threads <= 1 || work < MinParallelWork)
        {
            if (count > 0)
                body(0, count);
            return;
        }
        ForkJoinPool.Shared.Run(threads, t =>
        {
            int start = (int)((long)count * t / threads);
            int end = (int)((long)count * (t + 1) / threads);
            if (end > start)
                body(start, end);
        });
    }
}
