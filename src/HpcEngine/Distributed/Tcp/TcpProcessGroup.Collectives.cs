namespace HpcEngine.Distributed.Tcp;

/// <summary>The collectives of <see cref="IProcessGroup"/>: argument checks, the choice of algorithm, and the widening
/// of 16-bit floats; the algorithms are in TcpProcessGroup.Algorithms.cs, .Rings.cs and .Hierarchy.cs.</summary>
public sealed partial class TcpProcessGroup
{
    /// <inheritdoc/>
    public Work AllReduce(Tensor tensor, AllReduceOptions? options = null)
    {
        CheckTensor("allreduce", tensor);
        var o = options ?? new AllReduceOptions();
        if (tensor.DType == DType.Bool)
            throw new NotSupportedException("tcp does not support allreduce over bool tensors");
        long bytes = (long)tensor.NumEl * tensor.DType.SizeOf();
        bool widen = Reduced(tensor.DType) && !o.NarrowWire;
        // Chosen here, on the caller's thread, in call order: a first hierarchical op creates sub-groups, and every
        // rank must create them at the same point of its op sequence.
        if (!widen && GoesByExchange(o.Algorithm, bytes))
            return ExchangeAllReduce(tensor, o.Op, o.Timeout);
        var algorithm = Algorithm(o.Algorithm, widen ? 2 * bytes : bytes);
        LaneTicket? lane = null;
        if (algorithm == AllReduceAlgorithm.Hierarchical)
        {
            SubGroups();
            lane = EnterLane();
        }
        return Run("allreduce", bytes, o.Timeout, op => InLane(lane, op.Token, async () =>
                {
                    if (widen)
                    {
                        // bf16/fp16: accumulate in fp32 end to end, round once at the end.
                        using var wide = Ops.ToDType(tensor, DType.Float32, false);
                        await AllReduceBytes(op, wide.AsByteMemory(), DType.Float32, o.Op, algorithm)
                            .ConfigureAwait(false);
                        Ops.CopyInto(tensor, wide);
                    }
                    else
                        await AllReduceBytes(op, tensor.AsByteMemory(), tensor.DType, o.Op, algorithm)
                            .ConfigureAwait(false);
                }), $"{tensor.DType.TorchName()} x{tensor.NumEl} {o.Op}");
    }

    /// <summary>The algorithm an allreduce of <paramref name="bytes"/> (as reduced: fp32 for widened 16-bit data)
    /// runs.</summary>
    private AllReduceAlgorithm Algorithm(AllReduceAlgorithm asked, long bytes)
    {
        if (asked == AllReduceAlgorithm.Hierarchical && Size > 1 && HostGroups(out string? why) == null)
            throw new ArgumentException($"allreduce: AllReduceAlgorithm.Hierarchical was asked for, but {why}");
        if (asked != AllReduceAlgorithm.Auto)
            return asked;
        if (bytes <= _mesh.Options.SmallMessageBytes)
            return AllReduceAlgorithm.RecursiveDoubling;
        return Size > 1 && _mesh.Options.Hierarchical && HostGroups(out _) != null
            ? AllReduceAlgorithm.Hierarchical
            : AllReduceAlgorithm.Ring;
    }

    /// <summary>The algorithm <see cref="AllReduce"/> picks for <paramref name="bytes"/> with
    /// <see cref="AllReduceAlgorithm.Auto"/> (what `bench collectives` reports per size).</summary>
    public AllReduceAlgorithm ChosenAlgorithm(long bytes) =>
        Size <= 1 ? AllReduceAlgorithm.Auto
        : GoesByExchange(AllReduceAlgorithm.Auto, bytes) ? AllReduceAlgorithm.RecursiveDoubling
        : Algorithm(AllReduceAlgorithm.Auto, bytes);

    /// <summary>Whether an allreduce of <paramref name="bytes"/> with <see cref="AllReduceAlgorithm.Auto"/> runs
    /// recursive doubling over the shared-memory exchange rings (docs/ARCHITECTURE.md, small ops over shared
    /// memory).</summary>
    public bool RunsOnExchange(long bytes) => GoesByExchange(AllReduceAlgorithm.Auto, bytes);

    private async Task AllReduceBytes(Op op, Memory<byte> data, DType dtype, ReduceOp rop, AllReduceAlgorithm algorithm)
    {
        if (Size > 1)
        {
            await (
                algorithm switch
                {
                    AllReduceAlgorithm.Direct => DirectAllReduce(op, data, dtype, rop),
                    AllReduceAlgorithm.RecursiveDoubling => RecursiveDoublingAllReduce(op, data, dtype, rop),
                    AllReduceAlgorithm.Hierarchical => HierarchicalAllReduce(op, data, dtype, rop),
                    _ => RingAllReduce(op, data, dtype, rop),
                }
            ).ConfigureAwait(false);
        }
        if (rop == ReduceOp.Avg)
            WireReduce.Average(dtype, data.Span, Size);
    }

    /// <inheritdoc/>
    public Work Broadcast(Tensor tensor, BroadcastOptions? options = null)
    {
        CheckTensor("broadcast", tensor);
        var o = options ?? new BroadcastOptions();
        CheckRoot("broadcast", o.Root);
        long bytes = (long)tensor.NumEl * tensor.DType.SizeOf();
        var lane = GoesHierarchical(bytes) ? EnterLane() : null;
        return Run(
            "broadcast",
            bytes,
            o.Timeout,
            op =>
                Size <= 1 ? Task.CompletedTask
                : lane != null ? InLane(lane, op.Token, () => HierarchicalBroadcast(tensor.AsByteMemory(), o.Root))
                : ChainBroadcast(op, tensor.AsByteMemory(), o.Root),
            $"{tensor.DType.TorchName()} x{tensor.NumEl} root {o.Root}"
        );
    }

    /// <summary>Reduce to the root: a ring reduce-scatter, then every rank sends its reduced segment to the root (large
    /// messages), or every rank sends its buffer to the root, which folds them in rank order (small ones). Non-root
    /// ranks send about half of what an allreduce would; their tensors are left holding partial sums.</summary>
    public Work Reduce(Tensor tensor, ReduceOptions? options = null)
    {
        CheckTensor("reduce", tensor);
        var o = options ?? new ReduceOptions();
        CheckRoot("reduce", o.Root);
        if (tensor.DType == DType.Bool)
            throw new NotSupportedException("tcp does not support reduce over bool tensors");
        return Run(
            "reduce",
            (long)tensor.NumEl * tensor.DType.SizeOf(),
            o.Timeout,
            async op =>
            {
                if (Reduced(tensor.DType))
                {
                    using var wide = Ops.ToDType(tensor, DType.Float32, false);
                    await ReduceBytes(op, wide.AsByteMemory(), DType.Float32, o).ConfigureAwait(false);
                    if (Rank == o.Root)
                        Ops.CopyInto(tensor, wide);
                }
                else
                    await ReduceBytes(op, tensor.AsByteMemory(), tensor.DType, o).ConfigureAwait(false);
            },
            $"{tensor.DType.TorchName()} x{tensor.NumEl} {o.Op} root {o.Root}"
        );
    }

    private async Task ReduceBytes(Op op, Memory<byte> data, DType dtype, ReduceOptions o)
    {
        if (Size > 1)
        {
            if (data.Length <= _mesh.Options.SmallMessageBytes)
                await DirectReduce(op, data, dtype, o.Op, o.Root).ConfigureAwait(false);
            else
                await RingReduce(op, data, dtype, o.Op, o.Root).ConfigureAwait(false);
        }
        if (o.Op == ReduceOp.Avg && Rank == o.Root)
            WireReduce.Average(dtype, data.Span, Size);
    }

    /// <inheritdoc/>
    public Work AllGather(Tensor output, Tensor input, CollectiveOptions? options = null)
    {
        CheckTensor("allgather", output);
        CheckTensor("allgather", input);
        CollectiveShapes.AllGather(Size, output, input);
        long bytes = (long)output.NumEl * output.DType.SizeOf();
        var lane = GoesHierarchical(bytes) ? EnterLane() : null;
        return Run(
            "allgather",
            bytes,
            options?.Timeout,
            op =>
                lane != null
                    ? InLane(lane, op.Token, () => HierarchicalAllGather(output.AsByteMemory(), input.AsByteMemory()))
                    : RingAllGather(op, output.AsByteMemory(), input.AsByteMemory()),
            $"{input.DType.TorchName()} x{input.NumEl}"
        );
    }

    /// <inheritdoc/>
    public Work ReduceScatter(Tensor output, Tensor input, ReduceScatterOptions? options = null)
    {
        CheckTensor("reduce_scatter", output);
        CheckTensor("reduce_scatter", input);
        var o = options ?? new ReduceScatterOptions();
        CollectiveShapes.ReduceScatter(Size, output, input);
        long bytes = (long)input.NumEl * input.DType.SizeOf();
        var lane = GoesHierarchical(bytes) ? EnterLane() : null;
        Task Scatter(Op op, Memory<byte> to, Memory<byte> from, DType dtype) =>
            lane != null
                ? InLane(lane, op.Token, () => HierarchicalReduceScatter(to, from, dtype, o.Op))
                : RingReduceScatter(op, to, from, dtype, o.Op);
        return Run(
            "reduce_scatter",
            bytes,
            o.Timeout,
            async op =>
            {
                if (Reduced(input.DType))
                {
                    using var wi = Ops.ToDType(input, DType.Float32, false);
                    using var wo = Tensor.Empty(output.Shape, DType.Float32);
                    await Scatter(op, wo.AsByteMemory(), wi.AsByteMemory(), DType.Float32).ConfigureAwait(false);
                    Ops.CopyInto(output, wo);
                }
                else
                    await Scatter(op, output.AsByteMemory(), input.AsByteMemory(), input.DType).ConfigureAwait(false);
            },
            $"{input.DType.TorchName()} x{input.NumEl} {o.Op}"
        );
    }

    /// <inheritdoc/>
    public Work AllToAll(Tensor output, Tensor input, CollectiveOptions? options = null)
    {
        CheckTensor("alltoall", output);
        CheckTensor("alltoall", input);
        CollectiveShapes.AllToAll(Size, output, input);
        return Run(
            "alltoall",
            (long)input.NumEl * input.DType.SizeOf(),
            options?.Timeout,
            op => DirectAllToAll(op, output.AsByteMemory(), input.AsByteMemory()),
            $"{input.DType.TorchName()} x{input.NumEl}"
        );
    }

    /// <inheritdoc/>
    public Work Send(Tensor tensor, int dst, int tag = 0, CollectiveOptions? options = null)
    {
        CheckTensor("send", tensor);
        CheckPeer("send", dst);
        return Run(
            "send",
            (long)tensor.NumEl * tensor.DType.SizeOf(),
            options?.Timeout,
            async op =>
            {
                op.WaitingOn = _members[dst];
                await Link(dst).SendAsync(op.Tag, tensor.AsByteMemory(), op.Token).ConfigureAwait(false);
            },
            p2p: true,
            p2pTag: ((long)(uint)Rank << 20) ^ (uint)tag
        );
    }

    /// <inheritdoc/>
    public Work Recv(Tensor tensor, int src, int tag = 0, CollectiveOptions? options = null)
    {
        CheckTensor("recv", tensor);
        CheckPeer("recv", src);
        return Run(
            "recv",
            (long)tensor.NumEl * tensor.DType.SizeOf(),
            options?.Timeout,
            async op =>
            {
                var dst = tensor.AsByteMemory();
                using var m = await Receive(op, src, dst).ConfigureAwait(false);
                if (m.Length != dst.Length)
                    throw new CollectiveException(
                        "recv",
                        0,
                        _mesh.Rank,
                        _members[src],
                        $"rank {_members[src]} sent {m.Length} bytes for a {dst.Length}-byte tensor (tag {tag})"
                    );
                m.CopyTo(dst.Span);
            },
            p2p: true,
            p2pTag: ((long)(uint)src << 20) ^ (uint)tag
        );
    }

    /// <inheritdoc/>
    public Work Barrier(CollectiveOptions? options = null)
    {
        var one = Tensor.Ones([1], DType.Int32).DetachFromScope();
        var w = AllReduce(
            one,
            new AllReduceOptions { Timeout = options?.Timeout, Algorithm = AllReduceAlgorithm.RecursiveDoubling }
        );
        if (w.IsCompleted)
        {
            one.Dispose(); // finished on this thread (a small op over shared memory): no continuation to schedule
            return w;
        }
        return new Work(
            w.Task.ContinueWith(
                t =>
                {
                    one.Dispose();
                    t.GetAwaiter().GetResult();
                },
                TaskScheduler.Default
            )
        );
    }
}
