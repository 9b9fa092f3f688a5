using System.Collections.Concurrent;
using System.Diagnostics;

namespace HpcEngine.Distributed.Tcp;

/// <summary>The timeouts of a mesh's running ops, enforced by one timer that ticks every 50 ms while any op runs,
/// instead of a timer per op: arming and disarming a per-op timer wakes the timer thread each time, which on a
/// 2-core machine cost a visible share of a 4 KB allreduce. An op may fail up to one tick after its deadline.</summary>
internal sealed class OpDeadlines : IDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(50);
    private readonly ConcurrentDictionary<CancellationTokenSource, long> _running = new();
    private readonly Timer _timer;
    private int _armed;

    public OpDeadlines() => _timer = new Timer(_ => Check(), null, Timeout.Infinite, Timeout.Infinite);

    /// <summary>Cancels <paramref name="cts"/> once <paramref name="limit"/> has passed, unless it is released first.</summary>
    public void Track(CancellationTokenSource cts, TimeSpan limit)
    {
        long deadline = limit >= TimeSpan.FromDays(1) ? long.MaxValue : Stopwatch.GetTimestamp() + (long)(limit.TotalSeconds * Stopwatch.Frequency);
        _running[cts] = deadline;
        if (Interlocked.Exchange(ref _armed, 1) == 0) Arm(Tick);
    }

    private void Arm(TimeSpan period)
    {
        try { _timer.Change(period, period); }
        catch (ObjectDisposedException) { } // the mesh is closing
    }

    public void Release(CancellationTokenSource cts) => _running.TryRemove(cts, out _);

    private void Check()
    {
        long now = Stopwatch.GetTimestamp();
        foreach (var (cts, deadline) in _running)
            if (now >= deadline && _running.TryRemove(cts, out _))
            {
                try { cts.Cancel(); }
                catch (ObjectDisposedException) { } // the op ended at the same moment
            }
        // Idle: stop ticking (the next op re-arms).
        if (_running.IsEmpty && Interlocked.Exchange(ref _armed, 0) == 1)
        {
            Arm(Timeout.InfiniteTimeSpan);
            if (!_running.IsEmpty && Interlocked.Exchange(ref _armed, 1) == 0) Arm(Tick);
        }
    }

    public void Dispose() => _timer.Dispose();
}
