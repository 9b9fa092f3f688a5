using HpcEngine.Distributed;

namespace HpcEngine.Parallel.ModelParallel;

/// <summary>A dp × pp × tp arrangement of the ranks of a world group, with the sub-group of each axis. Ranks are laid
/// out tensor-parallel fastest, then pipeline, then data (rank = (d·pp + p)·tp + t), as Megatron-LM does, so the
/// chattiest axis (tp) joins neighbouring ranks — on a multi-GPU node, the same machine.
/// Data parallelism composes by handing <see cref="Data"/> to DistributedDataParallel: gradients are then averaged
/// over the data-parallel replicas only.</summary>
public sealed class DeviceMesh : IDisposable
{
    /// <summary>Data-parallel degree: replicas of the whole pipeline.</summary>
    public int DataParallel { get; }

    /// <summary>Pipeline-parallel degree: stages per replica.</summary>
    public int PipelineParallel { get; }

    /// <summary>Tensor-parallel degree: ranks that split each stage's layers.</summary>
    public int TensorParallel { get; }

    /// <summary>This rank's coordinates.</summary>
    public (int Data, int Pipeline, int Tensor) Coordinates { get; }

    /// <summary>The ranks with this rank's pipeline and tensor coordinates (its data-parallel replicas).</summary>
    public IProcessGroup Data { get; }

    /// <summary>The stages of this rank's pipeline.</summary>
    public IProcessGroup Pipeline { get; }

    /// <summary>The ranks sharing this rank's layers' shards.</summary>
    public IProcessGroup Tensor { get; }

    private DeviceMesh(
        int dp,
        int pp,
        int tp,
        (int, int, int) coordinates,
        IProcessGroup data,
        IProcessGroup pipeline,
        IProcessGroup tensor
    ) =>
        (DataParallel, PipelineParallel, TensorParallel, Coordinates, Data, Pipeline, Tensor) = (
            dp,
            pp,
            tp,
            coordinates,
            data,
            pipeline,
            tensor
        );

    /// <summary>Builds the mesh. Every rank of <paramref name="world"/> must call it (sub-group creation is
    /// collective).</summary>
    public static DeviceMesh Create(IProcessGroup world, int dataParallel, int pipelineParallel, int tensorParallel)
    {
        ArgumentNullException.ThrowIfNull(world);
        int dp = dataParallel,
            pp = pipelineParallel,
            tp = tensorParallel;
        if (dp < 1 || pp < 1 || tp < 1 || dp * pp * tp != world.Size)
            throw new ArgumentException($"mesh: dp {dp} × pp {pp} × tp {tp} must equal the world size {world.Size}");
        int Rank(int d, int p, int t) => (d * pp + p) * tp + t;
        int me = world.Rank,
            myT = me % tp,
            myP = me / tp % pp,
            myD = me / (tp * pp);
        IProcessGroup? data = null,
            pipeline = null,
            tensor = null;
        // Every rank creates every group in the same order; it keeps the ones it belongs to.
        for (int p = 0; p < pp; p++)
        for (int t = 0; t < tp; t++)
            data = world.NewGroup(Enumerable.Range(0, dp).Select(d => Rank(d, p, t)).ToArray()) ?? data;
        for (int d = 0; d < dp; d++)
        for (int t = 0; t < tp; t++)
            pipeline = world.NewGroup(Enumerable.Range(0, pp).Select(p => Rank(d, p, t)).ToArray()) ?? pipeline;
        for (int d = 0; d < dp; d++)
        for (int p = 0; p < pp; p++)
            tensor = world.NewGroup(Enumerable.Range(0, tp).Select(t => Rank(d, p, t)).ToArray()) ?? tensor;
        return new DeviceMesh(dp, pp, tp, (myD, myP, myT), data!, pipeline!, tensor!);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Data.Dispose();
        Pipeline.Dispose();
        Tensor.Dispose();
    }
}
