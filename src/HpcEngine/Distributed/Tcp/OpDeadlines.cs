using System.Collections.Concurrent;
using System.Diagnostics;

namespace HpcEngine.Distributed.Tcp;

/// <summary>The timeouts of a mesh's running ops, enforced by one timer that ticks every 50 ms while any op runs,
/// instead of a timer per op: arming and disarming a per-op timer wakes the timer thread each time, which on a
/// 2-core machine cost a visible share of a 4 KB allreduce. An op may fail up to one tick after its deadline.
/// The same tick says, every <see cref="TcpOptions.StallWarning"/>, which op has waited that long and on whom, so a
/// frozen peer is named minutes before the op's timeout.</summary>
internal sealed class OpDeadlines(TimeSpan stallWarning, Action<string> warn) : IDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(50);
    private readonly ConcurrentDictionary<CancellationTokenSource, Tracked> _running = new();
    private readonly long _warnTicks = (long)(stallWarning.TotalSeconds * Stopwatch.Frequency);
    private Timer? _timer;

    /// <summary>Whether the timer ticks; changed only under <see cref="_armGate"/>, together with the check for
    /// running ops, so a Track racing the last tick's "nothing runs, stop" can never leave an op without ticks
    /// (an op that never times out and never warns).</summary>
    private bool _armed;
    private readonly Lock _armGate = new();

    private sealed class Tracked(long start, long deadline, Func<string>? describe)
    {
        public long Start { get; } = start;
        public long Deadline { get; } = deadline;
        public Func<string>? Describe { get; } = describe;
        public long NextWarning = start;
    }

    public OpDeadlines()
        : this(TimeSpan.FromSeconds(30), _ => { }) { }

    /// <summary>Cancels <paramref name="cts"/> once <paramref name="limit"/> has passed, unless it is released first;
    /// <paramref name="describe"/> names the op and what it waits on for the stall warnings.</summary>
    public void Track(CancellationTokenSource cts, TimeSpan limit, Func<string>? describe = null)
    {
        long now = Stopwatch.GetTimestamp();
        long deadline =
            limit >= TimeSpan.FromDays(1) ? long.MaxValue : now + (long)(limit.TotalSeconds * Stopwatch.Frequency);
        _running[cts] = new Tracked(now, deadline, describe) { NextWarning = now + _warnTicks };
        lock (_armGate)
        {
            _timer ??= new Timer(_ => Check(), null, Timeout.Infinite, Timeout.Infinite);
            if (!_armed)
            {
                _armed = true;
                Arm(Tick);
            }
        }
    }

    private void Arm(TimeSpan period)
    {
        try
        {
            _timer!.Change(period, period);
        }
        catch (ObjectDisposedException) { } // the mesh is closing
    }

    public void Release(CancellationTokenSource cts) => _running.TryRemove(cts, out _);

    private void Check()
    {
        long now = Stopwatch.GetTimestamp();
        foreach (var (cts, op) in _running)
        {
            if (now >= op.Deadline && _running.TryRemove(cts, out _))
            {
                try
                {
                    cts.Cancel();
                }
                catch (ObjectDisposedException) { } // the op ended at the same moment
            }
            else if (op.Describe != null && now >= op.NextWarning)
            {
                op.NextWarning = now + _warnTicks;
                double waited = (now - op.Start) / (double)Stopwatch.Frequency;
                string left =
                    op.Deadline == long.MaxValue
                        ? "no timeout"
                        : $"times out in {(op.Deadline - now) / (double)Stopwatch.Frequency:F0}s";
                warn($"{op.Describe()} has made no progress for {waited:F0}s ({left})");
            }
        }
        // Idle: stop ticking (the next op re-arms).
        if (_running.IsEmpty)
            lock (_armGate)
                if (_running.IsEmpty && _armed)
                {
                    _armed = false;
                    Arm(Timeout.InfiniteTimeSpan);
                }
    }

    public void Dispose() => _timer?.Dispose();
}
