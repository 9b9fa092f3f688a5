using HpcEngine.Autograd;
using HpcEngine.Distributed;

namespace HpcEngine.Parallel.ModelParallel;

/// <summary>The conjugate communication functions of Megatron-LM tensor parallelism (Shoeybi et al. 2019), as
/// differentiable ops over a tensor-parallel group:
/// <list type="bullet">
/// <item><see cref="Copy"/> ("f"): identity forward, allreduce (sum) of the gradient backward — where a replicated
/// input enters column-parallel layers, each of which contributes a part of its gradient.</item>
/// <item><see cref="Reduce"/> ("g"): allreduce (sum) forward, identity backward — where row-parallel partial sums leave
/// the parallel region.</item>
/// <item><see cref="Gather"/>: allgather along the last dimension forward, this rank's slice of the gradient backward.</item>
/// </list>
/// Every rank of the group must call them in the same order (they are collectives).</summary>
public static class TensorParallelRegion
{
    /// <summary>"f": identity forward, gradient allreduced backward.</summary>
    public static Tensor Copy(Tensor x, IProcessGroup group)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(group);
        Tensor y;
        using (GradMode.NoGrad())
            y = x.Clone();
        if (!Recorder.Needs(x))
            return y;
        return Recorder.Record(y, "tp_copy", [x], g =>
        {
            var sum = g.Clone();
            group.AllReduce(sum).Wait();
            return [sum];
        });
    }

    /// <summary>"g": allreduce forward, identity backward.</summary>
    public static Tensor Reduce(Tensor x, IProcessGroup group)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(group);
        Tensor y;
        using (GradMode.NoGrad())
            y = x.Clone();
        group.AllReduce(y).Wait();
        if (!Recorder.Needs(x))
            return y;
        return Recorder.Record(y, "tp_reduce", [x], g => [g.Clone()]);
    }

    /// <summary>Allgather along the last dimension forward; this rank's slice of the gradient backward.</summary>
    public static Tensor Gather(Tensor x, IProcessGroup group)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(group);
        int n = group.Size,
            last = x.Rank - 1,
            width = x.ShapeArray[last];
        Tensor y;
        using (GradMode.NoGrad())
        {
            using var local = x.Contiguous();
            using var all = Tensor.Zeros([n, .. x.ShapeArray], x.DType);
            group.AllGather(all, local).Wait();
            // [n, ..., w] → [..., n, w] → [..., n·w]: rank r's columns land at [r·w, (r+1)·w).
            var order = Enumerable.Range(1, x.Rank).ToList();
            order.Insert(x.Rank - 1, 0);
            using var moved = all.Permute([.. order]);
            using var contiguous = moved.Contiguous();
            y = contiguous.Reshape([.. x.ShapeArray[..last], n * width]).Clone();
        }
        if (!Recorder.Needs(x))
            return y;
        int rank = group.Rank;
        return Recorder.Record(y, "tp_gather", [x], g =>
        {
            using var mine = g.Narrow(last, rank * width, width);
            return [mine.Clone()];
        });
    }
}
