namespace HpcEngine.Distributed;

/// <summary>Device tensors over a group that moves host memory (TCP): each op copies its device operands to the host,
/// runs the inner op there and, when that completes, copies the results back — so `--device cuda` trains data-parallel
/// over TCP where NCCL is not available (the NCCL group does the mirror image for CPU tensors). The copy to the host
/// is synchronous (the device's work so far must be done); the op and the copy back are asynchronous, so DDP's
/// buckets still overlap their reduction with the rest of the backward. CPU tensors pass straight through. Owns (and
/// disposes) the inner group.</summary>
public sealed class HostStagedProcessGroup(IProcessGroup inner) : IProcessGroup
{
    /// <inheritdoc/>
    public int Rank => inner.Rank;

    /// <inheritdoc/>
    public int Size => inner.Size;

    /// <inheritdoc/>
    public string Backend => inner.Backend + "+host-staging";

    /// <inheritdoc/>
    public long BytesSent => inner.BytesSent;

    /// <summary>A host copy of a device tensor (contiguous), or a handle to the CPU tensor itself.</summary>
    private static Tensor Host(Tensor t, bool copyIn)
    {
        if (t.IsCpu)
            return t.Alias();
        var h = Tensor.Empty(t.ShapeArray, t.DType);
        if (copyIn)
        {
            using var c = t.Contiguous();
            Ops.CopyAcross(c, h);
        }
        return h;
    }

    /// <summary>Runs <paramref name="op"/> on host copies of <paramref name="input"/> and <paramref name="output"/>
    /// (either may be null; the same tensor for in-place ops) and copies the output back on completion.</summary>
    private static Work Staged(Tensor? input, Tensor? output, bool outputIsInput, Func<Tensor?, Tensor?, Work> op)
    {
        if ((input?.IsCpu ?? true) && (output?.IsCpu ?? true))
            return op(input, output);
        var hIn = input != null ? Host(input, copyIn: true) : null;
        var hOut =
            outputIsInput ? hIn
            : output != null ? Host(output, copyIn: false)
            : null;
        Work work;
        try
        {
            work = op(hIn, hOut);
        }
        catch
        {
            hIn?.Dispose();
            if (!outputIsInput)
                hOut?.Dispose();
            throw;
        }
        var done = work.Task.ContinueWith(
            t =>
            {
                try
                {
                    t.GetAwaiter().GetResult();
                    if (output != null && !output.IsCpu)
                        Ops.CopyInto(output, hOut!);
                }
                finally
                {
                    hIn?.Dispose();
                    if (!outputIsInput)
                        hOut?.Dispose();
                }
            },
            TaskScheduler.Default
        );
        return new Work(done);
    }

    /// <inheritdoc/>
    public Work AllReduce(Tensor tensor, AllReduceOptions? options = null) =>
        Staged(tensor, tensor, true, (i, _) => inner.AllReduce(i!, options));

    /// <inheritdoc/>
    public Work Broadcast(Tensor tensor, BroadcastOptions? options = null) =>
        Staged(tensor, tensor, true, (i, _) => inner.Broadcast(i!, options));

    /// <inheritdoc/>
    public Work Reduce(Tensor tensor, ReduceOptions? options = null) =>
        Staged(tensor, tensor, true, (i, _) => inner.Reduce(i!, options));

    /// <inheritdoc/>
    public Work AllGather(Tensor output, Tensor input, CollectiveOptions? options = null) =>
        Staged(input, output, false, (i, o) => inner.AllGather(o!, i!, options));

    /// <inheritdoc/>
    public Work ReduceScatter(Tensor output, Tensor input, ReduceScatterOptions? options = null) =>
        Staged(input, output, false, (i, o) => inner.ReduceScatter(o!, i!, options));

    /// <inheritdoc/>
    public Work AllToAll(Tensor output, Tensor input, CollectiveOptions? options = null) =>
        Staged(input, output, false, (i, o) => inner.AllToAll(o!, i!, options));

    /// <inheritdoc/>
    public Work Send(Tensor tensor, int dst, int tag = 0, CollectiveOptions? options = null) =>
        Staged(tensor, null, false, (i, _) => inner.Send(i!, dst, tag, options));

    /// <inheritdoc/>
    public Work Recv(Tensor tensor, int src, int tag = 0, CollectiveOptions? options = null) =>
        Staged(null, tensor, false, (_, o) => inner.Recv(o!, src, tag, options));

    /// <inheritdoc/>
    public Work Barrier(CollectiveOptions? options = null) => inner.Barrier(options);

    /// <inheritdoc/>
    public IProcessGroup? NewGroup(IReadOnlyList<int> ranks)
    {
        var sub = inner.NewGroup(ranks);
        return sub == null ? null : new HostStagedProcessGroup(sub);
    }

    /// <inheritdoc/>
    public void Dispose() => inner.Dispose();
}
