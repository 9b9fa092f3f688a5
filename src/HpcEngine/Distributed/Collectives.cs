namespace HpcEngine.Distributed;

/// <summary>How values from the ranks combine.</summary>
public enum ReduceOp
{
    /// <summary>The sum.</summary>
    Sum,

    /// <summary>The sum divided by the group size.</summary>
    Avg,

    /// <summary>The largest value.</summary>
    Max,

    /// <summary>The smallest value.</summary>
    Min,

    /// <summary>The product.</summary>
    Product,
}

/// <summary>Which allreduce algorithm runs: chosen by message size, or forced.</summary>
public enum AllReduceAlgorithm
{
    /// <summary>Recursive doubling up to <see cref="Tcp.TcpOptions.SmallMessageBytes"/>, pipelined ring
    /// above.</summary>
    Auto,

    /// <summary>Chunked ring: reduce-scatter then allgather; bandwidth-optimal (each rank sends 2(n−1)/n of the
    /// data).</summary>
    Ring,

    /// <summary>Every rank sends its whole buffer to every other and reduces locally in rank order: one round,
    /// latency-optimal.</summary>
    Direct,

    /// <summary>log2(n) rounds of pairwise exchange (ranks beyond a power of two fold in first and get the result
    /// last): each rank sends log2(n) messages instead of n − 1, the fewest for a latency-bound op.</summary>
    RecursiveDoubling,

    /// <summary>Across hosts (NCCL's and Horovod's scheme): a reduce-scatter among the ranks of each host (shared
    /// memory), an allreduce of each 1/L share among the ranks with the same local index on the other hosts (the
    /// network, crossed once per share instead of by every step of a flat ring), then an allgather inside each host.
    /// Needs the same number of ranks L on every host; <see cref="Auto"/> picks it above
    /// <see cref="Tcp.TcpOptions.SmallMessageBytes"/> when the group spans several hosts.</summary>
    Hierarchical,
}

/// <summary>Options every collective takes.</summary>
public record CollectiveOptions
{
    /// <summary>How long the op may take before it fails with a <see cref="CollectiveException"/> (null: the group's
    /// default).</summary>
    public TimeSpan? Timeout { get; init; }
}

/// <summary>Options of an allreduce.</summary>
public sealed record AllReduceOptions : CollectiveOptions
{
    /// <summary>How the ranks' values combine (default: sum).</summary>
    public ReduceOp Op { get; init; } = ReduceOp.Sum;

    /// <summary>The algorithm (default: chosen by message size).</summary>
    public AllReduceAlgorithm Algorithm { get; init; } = AllReduceAlgorithm.Auto;

    /// <summary>bf16/fp16 only. False (default): widened to fp32 for the whole reduction and rounded once at the end —
    /// exact sums, fp32 bytes on the wire. True: sent as 16-bit values, each hop adding in fp32 and rounding back
    /// (as NCCL does) — half the bytes, one rounding per hop. Compression codecs use it.</summary>
    public bool NarrowWire { get; init; }
}

/// <summary>Options of a broadcast.</summary>
public sealed record BroadcastOptions : CollectiveOptions
{
    /// <summary>The rank whose tensor every rank receives.</summary>
    public int Root { get; init; }
}

/// <summary>Options of a reduce.</summary>
public sealed record ReduceOptions : CollectiveOptions
{
    /// <summary>The rank that receives the result.</summary>
    public int Root { get; init; }

    /// <summary>How the ranks' values combine (default: sum).</summary>
    public ReduceOp Op { get; init; } = ReduceOp.Sum;
}

/// <summary>Options of a reduce-scatter.</summary>
public sealed record ReduceScatterOptions : CollectiveOptions
{
    /// <summary>How the ranks' values combine (default: sum).</summary>
    public ReduceOp Op { get; init; } = ReduceOp.Sum;
}

/// <summary>A collective or point-to-point op that failed: a dead or frozen peer, a timeout, a desync. Names the op,
/// its sequence number, the local rank and (when known) the peer.</summary>
public sealed class CollectiveException : Exception
{
    /// <summary>An exception with the default message.</summary>
    public CollectiveException() { }

    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public CollectiveException(string message)
        : base(message) { }

    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public CollectiveException(string message, Exception inner)
        : base(message, inner) { }

    /// <summary>Op <paramref name="op"/> (its <paramref name="sequence"/> number in the group) failed on <paramref
    /// name="rank"/>, with <paramref name="peer"/> when one is to blame; <paramref name="what"/> says how.</summary>
    public CollectiveException(string op, long sequence, int rank, int? peer, string what, Exception? inner = null)
        : base($"{op} #{sequence} on rank {rank} failed{(peer.HasValue ? $" (peer rank {peer})" : "")}: {what}", inner)
    {
        Op = op;
        Sequence = sequence;
        Rank = rank;
        Peer = peer;
    }

    /// <summary>The op's name ("allreduce", "send" ...), or null for a failure outside an op.</summary>
    public string? Op { get; }

    /// <summary>The op's sequence number in its group (every rank numbers its ops alike).</summary>
    public long Sequence { get; }

    /// <summary>The rank that raised the error.</summary>
    public int Rank { get; }

    /// <summary>The peer that is dead, frozen or out of step, when known.</summary>
    public int? Peer { get; }

    /// <summary>The last collectives of the failing rank (flight recorder), when attached.</summary>
    public string? FlightRecord { get; init; }
}

/// <summary>A handle on an asynchronous op. <see cref="Wait"/> blocks and rethrows the op's failure.</summary>
public sealed class Work
{
    private readonly Task _task;
    private readonly Func<DateTime, bool>? _progress;

    internal Work(Task task) => _task = task;

    /// <summary>Work that completes with <paramref name="task"/> (its failure rethrown by <see cref="Wait"/>): how a
    /// process group written outside the core — HpcEngine.Cuda's NCCL group, an application's own — hands out its
    /// ops.</summary>
    public static Work FromTask(Task task)
    {
        ArgumentNullException.ThrowIfNull(task);
        return new Work(task);
    }

    /// <summary>Work whose waiter may drive the op itself: <paramref name="progress"/> runs on the thread that calls
    /// <see cref="Wait"/> and makes progress until the op completes or the deadline passes (true: completed). A
    /// latency-bound op then finishes on the waiting thread, without waking another thread to hand it over.</summary>
    internal Work(Task task, Func<DateTime, bool> progress)
    {
        _task = task;
        _progress = progress;
    }

    /// <summary>Completed work (for ops that finished synchronously).</summary>
    public static Work Done { get; } = new(Task.CompletedTask);

    /// <summary>True once the op has finished, successfully or not.</summary>
    public bool IsCompleted => _task.IsCompleted;

    /// <summary>The failure, once the op has failed.</summary>
    public Exception? Exception => _task.Exception?.InnerException ?? _task.Exception;

    /// <summary>The underlying task, for async callers.</summary>
    public Task Task => _task;

    /// <summary>Blocks until the op ends; rethrows its exception. A <paramref name="timeout"/> shorter than the op's
    /// own only bounds this wait: it throws TimeoutException and the op goes on.</summary>
    public void Wait(TimeSpan? timeout = null)
    {
        try
        {
            var deadline = timeout.HasValue ? DateTime.UtcNow + timeout.Value : DateTime.MaxValue;
            if (_progress != null && !_task.IsCompleted)
                _progress(deadline);
            if (timeout.HasValue)
            {
                var left = deadline - DateTime.UtcNow;
                if (!_task.Wait(left > TimeSpan.Zero ? left : TimeSpan.Zero))
                    throw new TimeoutException($"the op did not complete within {timeout.Value.TotalSeconds:F1}s");
            }
            else
                _task.Wait();
        }
        catch (AggregateException e) when (e.InnerException != null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
        }
    }
}

/// <summary>A set of processes that run collectives together. Every rank calls the same collectives in the same
/// order; tensors given to an op must stay alive and untouched until its <see cref="Work"/> completes.</summary>
public interface IProcessGroup : IDisposable
{
    /// <summary>This process's rank, 0 to <see cref="Size"/> − 1.</summary>
    int Rank { get; }

    /// <summary>The number of ranks in the group.</summary>
    int Size { get; }

    /// <summary>"tcp", "nccl" ...</summary>
    string Backend { get; }

    /// <summary>Reduces <paramref name="tensor"/> across ranks, in place on every rank.</summary>
    Work AllReduce(Tensor tensor, AllReduceOptions? options = null);

    /// <summary>Copies the root's tensor into every rank's tensor.</summary>
    Work Broadcast(Tensor tensor, BroadcastOptions? options = null);

    /// <summary>Reduces into the root's tensor (other ranks' tensors are left unspecified).</summary>
    Work Reduce(Tensor tensor, ReduceOptions? options = null);

    /// <summary>output [Size, ...input.shape] receives every rank's input in rank order.</summary>
    Work AllGather(Tensor output, Tensor input, CollectiveOptions? options = null);

    /// <summary>input [Size, ...output.shape]: output receives the reduction of every rank's slice [Rank].</summary>
    Work ReduceScatter(Tensor output, Tensor input, ReduceScatterOptions? options = null);

    /// <summary>input and output [Size, ...]: rank r's input slice [j] becomes rank j's output slice [r].</summary>
    Work AllToAll(Tensor output, Tensor input, CollectiveOptions? options = null);

    /// <summary>Sends a tensor to <paramref name="dst"/>; matched by the receiver's tag.</summary>
    Work Send(Tensor tensor, int dst, int tag = 0, CollectiveOptions? options = null);

    /// <summary>Receives into a tensor from <paramref name="src"/> (same shape and dtype as sent).</summary>
    Work Recv(Tensor tensor, int src, int tag = 0, CollectiveOptions? options = null);

    /// <summary>Returns when every rank has reached it.</summary>
    Work Barrier(CollectiveOptions? options = null);

    /// <summary>A sub-group of the given global ranks (every rank of this group must call it, members or not;
    /// non-members get null).</summary>
    IProcessGroup? NewGroup(IReadOnlyList<int> ranks);

    /// <summary>Bytes this rank has put on the wire so far, frame headers included (0 where the backend cannot
    /// count them).</summary>
    long BytesSent => 0;
}

/// <summary>The shape rules of the collectives with two tensors, shared by every process group (the core's and those
/// written outside it) so their errors read the same.</summary>
public static class CollectiveShapes
{
    /// <summary>Throws <see cref="ShapeMismatchException"/> unless output holds size × input, of the same
    /// dtype.</summary>
    public static void AllGather(int size, Tensor output, Tensor input)
    {
        if (output.DType != input.DType || output.NumEl != input.NumEl * size)
            throw new ShapeMismatchException(
                $"allgather: output must hold {size} × the input ({input.NumEl} {input.DType.TorchName()} elements); "
                    + $"got {output.NumEl} {output.DType.TorchName()}"
            );
    }

    /// <summary>Throws <see cref="ShapeMismatchException"/> unless input holds size × output, of the same
    /// dtype.</summary>
    public static void ReduceScatter(int size, Tensor output, Tensor input)
    {
        if (output.DType != input.DType || input.NumEl != output.NumEl * size)
            throw new ShapeMismatchException(
                $"reduce_scatter: input must hold {size} × the output ({output.NumEl} elements); got {input.NumEl}"
            );
    }

    /// <summary>Throws <see cref="ShapeMismatchException"/> unless input and output have one size, a multiple of the
    /// group size, and one dtype.</summary>
    public static void AllToAll(int size, Tensor output, Tensor input)
    {
        if (output.DType != input.DType || output.NumEl != input.NumEl || input.NumEl % size != 0)
            throw new ShapeMismatchException(
                $"alltoall: input and output must have the same size, a multiple of the group size {size} (got "
                    + $"{input.NumEl} and {output.NumEl})"
            );
    }
}
