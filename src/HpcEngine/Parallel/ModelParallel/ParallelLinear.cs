using HpcEngine.Distributed;
using HpcEngine.NN;

namespace HpcEngine.Parallel.ModelParallel;

/// <summary>A module whose parameters are shards of a full (single-process) module's parameters.</summary>
public interface ITensorParallelModule
{
    /// <summary>This rank's shard of the full parameter <paramref name="name"/> ("weight", "bias").</summary>
    Tensor Shard(string name, Tensor full);

    /// <summary>The full parameter reassembled from every rank's shard (a collective over the group).</summary>
    Tensor Unshard(string name, Tensor shard);
}

/// <summary>Y = X Aᵀ + b with A split by rows (output features) over the tensor-parallel group: rank r holds rows
/// [r·o/n, (r+1)·o/n) of A and of b. The input is replicated; its gradient is summed over the group (Copy). The output
/// stays split (for a following row-parallel layer) unless <c>gatherOutput</c>.</summary>
public sealed class ColumnParallelLinear : Module, ITensorParallelModule
{
    private readonly IProcessGroup _group;
    private readonly bool _gather;

    /// <summary>This rank's rows of A, [o/n, i].</summary>
    public Tensor Weight { get; }

    /// <summary>This rank's entries of b, [o/n], or null without a bias.</summary>
    public Tensor? Bias { get; }

    /// <summary>Input features i (every rank sees all of them).</summary>
    public int InFeatures { get; }

    /// <summary>Output features o of the whole layer.</summary>
    public int OutFeatures { get; }

    /// <summary>Output features this rank computes, o/n.</summary>
    public int OutPerRank { get; }

    /// <summary>Initialises the full layer exactly as <see cref="Linear"/> would (from <paramref name="generator"/>)
    /// and keeps this rank's rows, so a sharded model starts equal to the single-process one with the same
    /// generator.</summary>
    public ColumnParallelLinear(
        int inFeatures,
        int outFeatures,
        IProcessGroup group,
        bool bias = true,
        bool gatherOutput = false,
        Generator? generator = null
    )
    {
        ArgumentNullException.ThrowIfNull(group);
        if (outFeatures % group.Size != 0)
            throw new ArgumentException(
                $"column-parallel linear: {outFeatures} output features do not split over {group.Size} ranks"
            );
        (_group, _gather, InFeatures, OutFeatures, OutPerRank) = (
            group,
            gatherOutput,
            inFeatures,
            outFeatures,
            outFeatures / group.Size
        );
        using var full = new Linear(inFeatures, outFeatures, bias, generator);
        Weight = RegisterParameter("weight", Shard("weight", full.Weight));
        if (bias)
            Bias = RegisterParameter("bias", Shard("bias", full.Bias!));
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        using var x = TensorParallelRegion.Copy(input, _group);
        var y = Ops.Linear(x, Weight, Bias);
        if (!_gather)
            return y;
        using (y)
            return TensorParallelRegion.Gather(y, _group);
    }

    /// <inheritdoc/>
    public Tensor Shard(string name, Tensor full)
    {
        ArgumentNullException.ThrowIfNull(full);
        using var rows = full.Narrow(0, _group.Rank * OutPerRank, OutPerRank);
        using (Autograd.GradMode.NoGrad())
            return rows.Clone().DetachFromScope();
    }

    /// <inheritdoc/>
    public Tensor Unshard(string name, Tensor shard)
    {
        ArgumentNullException.ThrowIfNull(shard);
        using var noGrad = Autograd.GradMode.NoGrad();
        using var c = shard.Contiguous();
        var all = Tensor.Zeros([_group.Size, .. shard.ShapeArray]);
        _group.AllGather(all, c).Wait();
        using (all)
            return all.Reshape([_group.Size * shard.ShapeArray[0], .. shard.ShapeArray[1..]]).Clone().DetachFromScope();
    }

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"in_features={InFeatures}, out_features={OutFeatures}/{_group.Size}, gather={_gather}";
}

/// <summary>Y = X Aᵀ + b with A split by columns (input features): rank r holds columns [r·i/n, (r+1)·i/n) and takes
/// the matching slice of the input (a column-parallel layer's split output). Partial products are summed over the group
/// (Reduce); the bias is replicated and added once, after the sum.</summary>
public sealed class RowParallelLinear : Module, ITensorParallelModule
{
    private readonly IProcessGroup _group;

    /// <summary>This rank's columns of A, [o, i/n].</summary>
    public Tensor Weight { get; }

    /// <summary>The bias b, [o], replicated on every rank, or null.</summary>
    public Tensor? Bias { get; }

    /// <summary>Input features i of the whole layer.</summary>
    public int InFeatures { get; }

    /// <summary>Output features o.</summary>
    public int OutFeatures { get; }

    /// <summary>Input features this rank takes, i/n.</summary>
    public int InPerRank { get; }

    /// <summary>The row-parallel shard of an <paramref name="inFeatures"/> → <paramref name="outFeatures"/> linear for
    /// this rank of <paramref name="group"/>, cut from a full layer initialised from <paramref
    /// name="generator"/>.</summary>
    public RowParallelLinear(
        int inFeatures,
        int outFeatures,
        IProcessGroup group,
        bool bias = true,
        Generator? generator = null
    )
    {
        ArgumentNullException.ThrowIfNull(group);
        if (inFeatures % group.Size != 0)
            throw new ArgumentException(
                $"row-parallel linear: {inFeatures} input features do not split over {group.Size} ranks"
            );
        (_group, InFeatures, OutFeatures, InPerRank) = (group, inFeatures, outFeatures, inFeatures / group.Size);
        using var full = new Linear(inFeatures, outFeatures, bias, generator);
        Weight = RegisterParameter("weight", Shard("weight", full.Weight));
        if (bias)
            Bias = RegisterParameter("bias", Shard("bias", full.Bias!));
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        using var partial = Ops.Linear(input, Weight, null);
        var y = TensorParallelRegion.Reduce(partial, _group);
        if (Bias == null)
            return y;
        using (y)
            return Ops.Add(y, Bias);
    }

    /// <inheritdoc/>
    public Tensor Shard(string name, Tensor full)
    {
        ArgumentNullException.ThrowIfNull(full);
        using var noGrad = Autograd.GradMode.NoGrad();
        if (name == "bias")
            return full.Clone().DetachFromScope();
        using var cols = full.Narrow(1, _group.Rank * InPerRank, InPerRank);
        return cols.Clone().DetachFromScope();
    }

    /// <inheritdoc/>
    public Tensor Unshard(string name, Tensor shard)
    {
        ArgumentNullException.ThrowIfNull(shard);
        using var noGrad = Autograd.GradMode.NoGrad();
        if (name == "bias")
            return shard.Clone().DetachFromScope();
        using var c = shard.Contiguous();
        using var all = Tensor.Zeros([_group.Size, .. shard.ShapeArray]);
        _group.AllGather(all, c).Wait();
        // [n, out, i/n] → [out, n, i/n] → [out, i]
        using var moved = all.Permute(1, 0, 2);
        using var contiguous = moved.Contiguous();
        return contiguous.Reshape(shard.ShapeArray[0], _group.Size * shard.ShapeArray[1]).Clone().DetachFromScope();
    }

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"in_features={InFeatures}/{_group.Size}, out_features={OutFeatures}";
}
