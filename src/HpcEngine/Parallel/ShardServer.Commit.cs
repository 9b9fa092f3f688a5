using HpcEngine.Autograd;
using HpcEngine.Distributed;

namespace HpcEngine.Parallel;

/// <summary>A shard's side of an elastic parameter server's commit points: a rendezvous of every worker, the shard's
/// state as it stood there, and loading a re-partitioned state.</summary>
internal sealed partial class ShardServer
{
    /// <summary>The state entry of a shard's weights beside its optimizer's ("state.0.exp_avg" ...).</summary>
    public const string WeightsEntry = "weights";

    private readonly long[] _arrived; // the last rendezvous key each worker reached
    private long _snapshotKey = -1;
    private int _failedWorker = -1;

    /// <summary>The shard at the commit point in progress (taken when its first rendezvous completed).</summary>
    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars)? Pending { get; private set; }

    /// <summary>The shard at the last commit point this rank finished.</summary>
    public (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars)? Committed { get; private set; }

    /// <summary>Blocks until every worker still training has arrived at rendezvous <paramref name="key"/> (keys only
    /// grow). With <paramref name="snapshot"/>, the shard's state is then taken (once per key) and copied into
    /// <paramref name="into"/>. Returns the shard's version. A worker lost meanwhile fails the rendezvous: the commit
    /// cannot complete without it.</summary>
    public long Arrive(int worker, long key, bool snapshot, Span<float> into)
    {
        lock (_lock)
        {
            _arrived[worker] = Math.Max(_arrived[worker], key);
            Monitor.PulseAll(_lock);
            while (!AllArrived(key))
            {
                ThrowIfWorkerFailed(key);
                Monitor.Wait(_lock);
            }
            ThrowIfWorkerFailed(key);
            if (snapshot && _snapshotKey < key)
            {
                // Every worker pushed the same number of gradients, so nothing is pending: the shard is whole.
                DisposeState(Pending);
                Pending = Take();
                _snapshotKey = key;
            }
            if (!into.IsEmpty)
                _weights.AsReadOnlySpan<float>().CopyTo(into);
            return _version;
        }
    }

    private bool AllArrived(long key)
    {
        for (int w = 0; w < _arrived.Length; w++)
            if (!_left[w] && _arrived[w] < key)
                return false;
        return true;
    }

    private void ThrowIfWorkerFailed(long key)
    {
        if (_failedWorker >= 0)
            throw new CollectiveException(
                $"parameter server: worker {_failedWorker} was lost before commit rendezvous {key} completed"
            );
    }

    /// <summary>This rank finished the commit point in progress: its state becomes the one a rollback returns
    /// to.</summary>
    public void Promote()
    {
        lock (_lock)
        {
            if (Pending == null)
                return;
            DisposeState(Committed);
            Committed = Pending;
            Pending = null;
        }
    }

    /// <summary>The shard's state now, as the start of a generation's commit points.</summary>
    public void CommitNow()
    {
        lock (_lock)
        {
            DisposeState(Committed);
            DisposeState(Pending);
            Pending = null;
            Committed = Take();
        }
    }

    /// <summary>Replaces the shard's weights and optimizer state (a re-partition after a change of
    /// membership).</summary>
    public void Load(
        ReadOnlySpan<float> weights,
        Dictionary<string, Tensor> optimizer,
        Dictionary<string, string> scalars
    )
    {
        lock (_lock)
        {
            using (GradMode.NoGrad())
            {
                using var src = Tensor.FromArray(weights.ToArray());
                Ops.CopyInto(_weights, src);
            }
            Optimizer.LoadStateDict(optimizer, scalars);
        }
    }

    private (Dictionary<string, Tensor>, Dictionary<string, string>) Take()
    {
        var (tensors, scalars) = Optimizer.StateDict();
        using (GradMode.NoGrad())
            tensors[WeightsEntry] = _weights.Clone().DetachFromScope();
        return (tensors, scalars);
    }

    private static void DisposeState((Dictionary<string, Tensor> Tensors, Dictionary<string, string>)? state)
    {
        if (state is { } s)
            foreach (var t in s.Tensors.Values)
                t.Dispose();
    }

    private void DisposeSnapshots()
    {
        DisposeState(Pending);
        DisposeState(Committed);
        Pending = Committed = null;
    }
}
