using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;

namespace HpcEngine.Parallel.ModelParallel;

/// <summary>An embedding table split by vocabulary rows over the tensor-parallel group: rank r holds tokens
/// [r·V/n, (r+1)·V/n). Each rank looks up the ids it owns (zeros for the others) and the partial results are summed
/// over the group — the table's memory and its gradient are 1/n per rank.</summary>
public sealed class VocabParallelEmbedding : Module, ITensorParallelModule
{
    private readonly IProcessGroup _group;

    /// <summary>This rank's rows of the table, [V/n, D].</summary>
    public Tensor Weight { get; }

    /// <summary>The whole vocabulary size V.</summary>
    public int Vocab { get; }

    /// <summary>Vocabulary rows per rank, V/n.</summary>
    public int PerRank { get; }

    /// <summary>Initialised as the full <see cref="Embedding"/> would be from <paramref name="generator"/>, then
    /// sharded.</summary>
    public VocabParallelEmbedding(int vocab, int dim, IProcessGroup group, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(group);
        if (vocab % group.Size != 0)
            throw new ArgumentException(
                $"vocab-parallel embedding: {vocab} tokens do not split over {group.Size} ranks"
            );
        (_group, Vocab, PerRank) = (group, vocab, vocab / group.Size);
        using var full = new Embedding(vocab, dim, generator);
        Weight = RegisterParameter("weight", Shard("weight", full.Weight));
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var ids = input.ToArray<long>();
        long start = (long)_group.Rank * PerRank;
        var local = new long[ids.Length];
        var mask = new float[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] < 0 || ids[i] >= Vocab)
                throw new ArgumentOutOfRangeException(
                    nameof(input),
                    $"token id {ids[i]} outside the vocabulary of {Vocab}"
                );
            bool mine = ids[i] >= start && ids[i] < start + PerRank;
            local[i] = mine ? ids[i] - start : 0;
            mask[i] = mine ? 1 : 0;
        }
        using var localIds = Tensor.FromArray(local, input.ShapeArray);
        using var keep = Tensor.FromArray(mask, [.. input.ShapeArray, 1]);
        using var rows = F.Embedding(localIds, Weight);
        using var masked = Ops.Mul(rows, keep);
        return TensorParallelRegion.Reduce(masked, _group);
    }

    /// <inheritdoc/>
    public Tensor Shard(string name, Tensor full)
    {
        ArgumentNullException.ThrowIfNull(full);
        using var noGrad = GradMode.NoGrad();
        using var rows = full.Narrow(0, _group.Rank * PerRank, PerRank);
        return rows.Clone().DetachFromScope();
    }

    /// <inheritdoc/>
    public Tensor Unshard(string name, Tensor shard)
    {
        ArgumentNullException.ThrowIfNull(shard);
        using var noGrad = GradMode.NoGrad();
        using var c = shard.Contiguous();
        using var all = Tensor.Zeros([_group.Size, .. shard.ShapeArray]);
        _group.AllGather(all, c).Wait();
        return all.Reshape(Vocab, shard.ShapeArray[1]).Clone().DetachFromScope();
    }
}

/// <summary>Cross-entropy over logits split by vocabulary (a column-parallel head without gathering): the softmax
/// normaliser and the target logit are assembled with two small allreduces (a max, then sums) instead of gathering
/// [N, V] logits on every rank (Megatron's vocab-parallel cross-entropy). Mean over the rows.</summary>
public static class VocabParallelCrossEntropy
{
    /// <param name="logits">This rank's logits [N, V/n] for vocabulary slice [rank·V/n, (rank+1)·V/n).</param>
    /// <param name="targets">int64 [N], ids in the whole vocabulary.</param>
    /// <param name="group">The tensor-parallel group the vocabulary is split over.</param>
    public static Tensor Compute(Tensor logits, Tensor targets, IProcessGroup group)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(group);
        if (logits.Rank != 2 || targets.Rank != 1 || targets.ShapeArray[0] != logits.ShapeArray[0])
            throw new ShapeMismatchException(
                $"vocab-parallel cross-entropy: logits {Shapes.Format(logits.ShapeArray)} and targets "
                    + $"{Shapes.Format(targets.ShapeArray)} must be [N, V/n] and [N]"
            );
        int n = logits.ShapeArray[0],
            v = logits.ShapeArray[1];
        long start = (long)group.Rank * v;
        var l = logits.ToArray<float>();
        var t = targets.ToArray<long>();
        var stats = new double[n];
        for (int i = 0; i < n; i++)
        {
            double m = double.NegativeInfinity;
            for (int j = 0; j < v; j++)
                m = Math.Max(m, l[i * v + j]);
            stats[i] = m;
        }
        using (var max = Tensor.FromArray(stats))
        {
            group.AllReduce(max, new AllReduceOptions { Op = ReduceOp.Max }).Wait();
            stats = max.ToArray<double>();
        }
        var sums = new double[2 * n]; // [sum of exp(logit − max) ..., target logit ...]
        for (int i = 0; i < n; i++)
        {
            double s = 0;
            for (int j = 0; j < v; j++)
                s += Math.Exp(l[i * v + j] - stats[i]);
            sums[i] = s;
            long local = t[i] - start;
            if (local >= 0 && local < v)
                sums[n + i] = l[i * v + local];
        }
        using (var both = Tensor.FromArray(sums))
        {
            group.AllReduce(both).Wait();
            sums = both.ToArray<double>();
        }
        double loss = 0;
        for (int i = 0; i < n; i++)
            loss += Math.Log(sums[i]) + stats[i] - sums[n + i];
        var output = Tensor.Scalar(loss / n);
        if (!Recorder.Needs(logits))
            return output;
        return Recorder.Record(output, "vocab_parallel_cross_entropy", [logits], g =>
        {
            double scale = g.Item() / n;
            var grad = new float[n * v];
            for (int i = 0; i < n; i++)
            {
                long local = t[i] - start;
                for (int j = 0; j < v; j++)
                    grad[i * v + j] = (float)(
                        (Math.Exp(l[i * v + j] - stats[i]) / sums[i] - (j == local ? 1 : 0)) * scale
                    );
            }
            return [Tensor.FromArray(grad, n, v)];
        });
    }
}
