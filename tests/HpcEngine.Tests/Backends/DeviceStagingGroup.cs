using HpcEngine.Distributed;

namespace HpcEngine.Tests.Backends;

/// <summary>A process group for device tensors over a CPU group: each op copies the tensor to the host, runs there
/// and copies the result back (what the NCCL group does for CPU tensors, the other way round). Lets the tests run
/// data-parallel training on the test device without a GPU.</summary>
internal sealed class DeviceStagingGroup(IProcessGroup inner) : IProcessGroup
{
    public int Rank => inner.Rank;
    public int Size => inner.Size;
    public string Backend => "staging(" + inner.Backend + ")";
    public long BytesSent => inner.BytesSent;

    private static Work Staged(Tensor t, Func<Tensor, Work> op)
    {
        if (t.IsCpu) return op(t);
        using var host = t.To(Device.Cpu);
        op(host).Wait();
        using var back = host.To(t.Device);
        HpcEngine.Ops.CopyInto(t, back);
        return Work.Done;
    }

    public Work AllReduce(Tensor tensor, AllReduceOptions? options = null) => Staged(tensor, h => inner.AllReduce(h, options));
    public Work Broadcast(Tensor tensor, BroadcastOptions? options = null) => Staged(tensor, h => inner.Broadcast(h, options));
    public Work Barrier(CollectiveOptions? options = null) => inner.Barrier(options);
    // CPU tensors (metrics, barriers) pass straight through; device ones are staged only where DDP needs it.
    private static T Cpu<T>(string op, Func<T> f, params Tensor[] ts) =>
        ts.All(t => t.IsCpu) ? f() : throw new NotSupportedException($"staging does not support {op} of device tensors");

    public Work Reduce(Tensor tensor, ReduceOptions? options = null) => Cpu("reduce", () => inner.Reduce(tensor, options), tensor);
    public Work AllGather(Tensor output, Tensor input, CollectiveOptions? options = null) => Cpu("allgather", () => inner.AllGather(output, input, options), output, input);
    public Work ReduceScatter(Tensor output, Tensor input, ReduceScatterOptions? options = null) => Cpu("reduce_scatter", () => inner.ReduceScatter(output, input, options), output, input);
    public Work AllToAll(Tensor output, Tensor input, CollectiveOptions? options = null) => Cpu("alltoall", () => inner.AllToAll(output, input, options), output, input);
    public Work Send(Tensor tensor, int dst, int tag = 0, CollectiveOptions? options = null) => Cpu("send", () => inner.Send(tensor, dst, tag, options), tensor);
    public Work Recv(Tensor tensor, int src, int tag = 0, CollectiveOptions? options = null) => Cpu("recv", () => inner.Recv(tensor, src, tag, options), tensor);
    public IProcessGroup? NewGroup(IReadOnlyList<int> ranks) => throw new NotSupportedException("staging does not support new_group");
    public void Dispose() { }
}
