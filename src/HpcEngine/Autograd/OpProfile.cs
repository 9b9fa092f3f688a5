using System.Diagnostics;

namespace HpcEngine.Autograd;

/// <summary>Per-op wall time of training steps on this thread, forward and backward apart — what
/// <c>hpcengine bench step --profile</c> prints. Start one with <see cref="Start"/> (it lasts until disposed, on the
/// thread that started it, like <see cref="GradMode"/>); nothing is measured otherwise.
/// <para>Backward: each graph node's rule is timed as it runs. Forward: ops are not timed from their entry, so an
/// op is charged the wall time since the previous recorded op (or the last <see cref="Mark"/>) — its own kernels plus
/// whatever ran unrecorded in between (module glue, dtype conversions); call <see cref="Mark"/> before each forward
/// so a step's other work is not charged to its first op. Other sections (the optimizer) are timed with
/// <see cref="Time"/>. Kernels run synchronously on the CPU, so wall time is their time; on a device that queues
/// work it is the time to enqueue it.</para></summary>
public sealed class OpProfile : IDisposable
{
    [ThreadStatic]
    private static OpProfile? _current;

    private readonly OpProfile? _previous;
    private readonly Dictionary<(string Op, string Phase), Entry> _entries = new();
    private long _mark = Stopwatch.GetTimestamp();
    private bool _disposed;

    private OpProfile(OpProfile? previous) => _previous = previous;

    /// <summary>The profile measuring on this thread, if any.</summary>
    internal static OpProfile? Current => _current;

    /// <summary>Starts measuring on this thread until the returned profile is disposed.</summary>
    public static OpProfile Start() => _current = new OpProfile(_current);

    /// <summary>One op in one phase: how often it ran and for how long in all.</summary>
    public sealed record Entry(string Op, string Phase, int Calls, double Seconds);

    /// <summary>Every op and phase measured so far, longest first.</summary>
    public IReadOnlyList<Entry> Entries => [.. _entries.Values.OrderByDescending(e => e.Seconds)];

    /// <summary>Resets the forward clock: the next recorded op is charged from here.</summary>
    public void Mark() => _mark = Stopwatch.GetTimestamp();

    /// <summary>Runs <paramref name="section"/> and charges its time to <paramref name="name"/> in
    /// <paramref name="phase"/> (then marks).</summary>
    public void Time(string name, string phase, Action section)
    {
        ArgumentNullException.ThrowIfNull(section);
        long start = Stopwatch.GetTimestamp();
        section();
        Add(name, phase, Stopwatch.GetElapsedTime(start).TotalSeconds);
        Mark();
    }

    /// <summary>Forgets everything measured (warm-up steps).</summary>
    public void Clear()
    {
        _entries.Clear();
        Mark();
    }

    internal void Forward(string op)
    {
        long now = Stopwatch.GetTimestamp();
        Add(op, "forward", Stopwatch.GetElapsedTime(_mark, now).TotalSeconds);
        _mark = now;
    }

    internal void Backward(string op, long startTimestamp) =>
        Add(op, "backward", Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds);

    private void Add(string op, string phase, double seconds)
    {
        var key = (op, phase);
        _entries[key] = _entries.TryGetValue(key, out var e)
            ? e with
            {
                Calls = e.Calls + 1,
                Seconds = e.Seconds + seconds,
            }
            : new Entry(op, phase, 1, seconds);
    }

    /// <summary>Stops measuring (a profile started inside this one measures again).</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (_current == this)
            _current = _previous;
    }
}
