using System.Diagnostics;
using HpcEngine.Autograd;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

/// <summary>One shard of a <see cref="ParameterServerStrategy"/>: its master weights, optimizer and clocks. Every
/// member takes its lock.</summary>
internal sealed partial class ShardServer : IDisposable
{
    private readonly object _lock = new();
    private readonly Tensor _weights;
    private readonly float[] _pending;
    private readonly List<long> _pendingReads = new();
    private readonly long[] _clocks;
    private readonly bool[] _left;
    private readonly int? _bound;
    private long _version,
        _stalenessSum,
        _stalenessMax,
        _updates,
        _maxLead;
    private double _pendingLr = double.NaN;

    public Optimizer Optimizer { get; }

    public ShardServer(
        ReadOnlySpan<float> initial,
        int workers,
        int? bound,
        Func<IEnumerable<Tensor>, Optimizer> makeOptimizer
    )
    {
        _weights = Tensor.FromArray(initial.ToArray()).DetachFromScope().RequiresGrad_();
        _pending = new float[initial.Length];
        _clocks = new long[workers];
        _left = new bool[workers];
        _arrived = new long[workers];
        Array.Fill(_arrived, -1);
        _bound = bound;
        Optimizer = makeOptimizer([_weights]);
    }

    public StalenessStats Staleness
    {
        get
        {
            lock (_lock)
                return new StalenessStats(
                    _updates,
                    _updates == 0 ? 0 : (double)_stalenessSum / _updates,
                    _stalenessMax
                );
        }
    }

    public long MaxLead
    {
        get
        {
            lock (_lock)
                return _maxLead;
        }
    }

    /// <summary>Adds <paramref name="worker"/>'s gradient of its step <paramref name="clock"/>, computed on the shard
    /// as it was after <paramref name="versionRead"/> optimizer steps. Once as many gradients are pending as there
    /// are workers, their average is applied as one optimizer step (n-softsync, Zhang et al. 2016): in lock-step
    /// that is exactly synchronous training; when workers drift apart, the faster ones fill the steps.</summary>
    public void Push(int worker, long clock, long versionRead, double lr, ReadOnlySpan<float> gradient)
    {
        lock (_lock)
        {
            _pendingLr = lr;
            for (int i = 0; i < _pending.Length; i++)
                _pending[i] += gradient[i];
            _pendingReads.Add(versionRead);
            _clocks[worker] = Math.Max(_clocks[worker], clock + 1);
            if (_pendingReads.Count >= _clocks.Length)
                Apply();
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>Waits until the slowest worker still training has pushed at least <paramref name="clock"/> − k
    /// gradients, then copies the shard out. Returns the seconds it waited.</summary>
    public double Pull(long clock, out long version, Span<float> into)
    {
        long start = Stopwatch.GetTimestamp();
        lock (_lock)
        {
            while (_bound is int k && clock - MinClock() > k)
                Monitor.Wait(_lock);
            _maxLead = Math.Max(_maxLead, clock - Math.Min(MinClock(), clock));
            version = _version;
            _weights.AsReadOnlySpan<float>().CopyTo(into);
        }
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>The fewest pushes among workers still training (one that left no longer holds others back).</summary>
    private long MinClock()
    {
        long min = long.MaxValue;
        for (int w = 0; w < _clocks.Length; w++)
            if (!_left[w])
                min = Math.Min(min, _clocks[w]);
        return min;
    }

    /// <summary>One optimizer step on the average of the pending gradients; records each one's staleness.</summary>
    private void Apply()
    {
        if (_pendingReads.Count == 0)
            return;
        foreach (long read in _pendingReads)
        {
            long s = _version - read;
            _stalenessSum += s;
            _stalenessMax = Math.Max(_stalenessMax, s);
            _updates++;
        }
        using (GradMode.NoGrad())
        {
            float inv = 1f / _pendingReads.Count;
            for (int i = 0; i < _pending.Length; i++)
                _pending[i] *= inv;
            using var g = Tensor.FromArray(_pending);
            if (_weights.Grad == null)
                _weights.Grad = g.Clone().DetachFromScope();
            else
                Ops.CopyInto(_weights.Grad, g);
            if (double.IsFinite(_pendingLr) && _pendingLr > 0)
                Optimizer.Lr = _pendingLr;
            Optimizer.Step();
        }
        _version++;
        _pendingReads.Clear();
        Array.Clear(_pending);
    }

    /// <summary>A worker has finished; when none is left, what is still pending is applied (nothing is
    /// dropped). <paramref name="failed"/>: its link failed, so a commit in progress cannot complete.</summary>
    public void Leave(int worker, bool failed = false)
    {
        lock (_lock)
        {
            _left[worker] = true;
            _failedWorker = failed ? worker : _failedWorker;
            if (_left.All(l => l))
                Apply();
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>A copy of the shard.</summary>
    public float[] Snapshot()
    {
        lock (_lock)
            return _weights.ToArray<float>();
    }

    public void Dispose()
    {
        DisposeSnapshots();
        Optimizer.Dispose();
        _weights.ZeroGrad();
        _weights.Dispose();
    }
}
