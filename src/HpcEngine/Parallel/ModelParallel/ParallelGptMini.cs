using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;

namespace HpcEngine.Parallel.ModelParallel;

/// <summary>The fused q/k/v projection of attention, split by heads: rank r holds the rows of heads [r·H/n, (r+1)·H/n)
/// in each of the q, k and v blocks of the full [3D, D] weight (a plain row split would hand one rank all of q). The
/// input is replicated (Copy); the output [.., 3D/n] is this rank's q | k | v.</summary>
public sealed class QkvParallelLinear : Module, ITensorParallelModule
{
    private readonly IProcessGroup _group;
    private readonly int _dim;

    /// <summary>This rank's rows of the q, k and v blocks, [3D/n, D].</summary>
    public Tensor Weight { get; }

    /// <summary>This rank's entries of the q, k and v biases, [3D/n].</summary>
    public Tensor Bias { get; }

    /// <summary>The shard of a <paramref name="dim"/> → 3·dim projection for this rank of <paramref name="group"/>, cut
    /// from a full layer initialised from <paramref name="generator"/> (so any rank count starts from the same
    /// weights).</summary>
    public QkvParallelLinear(int dim, IProcessGroup group, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(group);
        if (dim % group.Size != 0)
            throw new ArgumentException($"qkv-parallel linear: width {dim} does not split over {group.Size} ranks");
        (_group, _dim) = (group, dim);
        using var full = new Linear(dim, 3 * dim, generator: generator);
        Weight = RegisterParameter("weight", Shard("weight", full.Weight));
        Bias = RegisterParameter("bias", Shard("bias", full.Bias!));
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        using var x = TensorParallelRegion.Copy(input, _group);
        return Ops.Linear(x, Weight, Bias);
    }

    /// <inheritdoc/>
    public Tensor Shard(string name, Tensor full)
    {
        ArgumentNullException.ThrowIfNull(full);
        using var noGrad = GradMode.NoGrad();
        int per = _dim / _group.Size;
        var parts = Enumerable.Range(0, 3).Select(j => full.Narrow(0, j * _dim + _group.Rank * per, per)).ToArray();
        try
        {
            return Ops.Cat(parts, 0).DetachFromScope();
        }
        finally
        {
            foreach (var p in parts)
                p.Dispose();
        }
    }

    /// <inheritdoc/>
    public Tensor Unshard(string name, Tensor shard)
    {
        ArgumentNullException.ThrowIfNull(shard);
        using var noGrad = GradMode.NoGrad();
        int n = _group.Size,
            per = _dim / n;
        using var c = shard.Contiguous();
        using var all = Tensor.Zeros([n, .. shard.ShapeArray]);
        _group.AllGather(all, c).Wait();
        // all[r] = [q_r; k_r; v_r] → [q_0..q_{n−1}; k_0..; v_0..]
        var pieces = new List<Tensor>();
        try
        {
            for (int j = 0; j < 3; j++)
            for (int r = 0; r < n; r++)
            {
                using var rank = all.Narrow(0, r, 1);
                using var squeezed = rank.Reshape(shard.ShapeArray);
                pieces.Add(squeezed.Narrow(0, j * per, per));
            }
            return Ops.Cat(pieces, 0).DetachFromScope();
        }
        finally
        {
            foreach (var p in pieces)
                p.Dispose();
        }
    }
}

/// <summary><see cref="GptMini"/> in Megatron tensor parallelism over a group of n ranks: vocabulary-parallel token
/// embedding, attention with H/n heads per rank (q/k/v split by heads, output projection row-parallel), the MLP as a
/// column → row block, and a vocabulary-parallel head whose logits [B, T, V/n] go to
/// <see cref="VocabParallelCrossEntropy"/>. Layer norms and the position embedding are replicated. Module names and
/// initialisation order are GptMini's, so <see cref="TensorParallel.FullStateDict"/> and the gradients line up with
/// the single-process model built from the same generator.</summary>
public sealed class ParallelGptMini : Module
{
    private readonly GptMiniConfig _config;
    private readonly VocabParallelEmbedding _wte;
    private readonly Embedding _wpe;
    private readonly Block[] _blocks;
    private readonly LayerNorm _lnF;
    private readonly ColumnParallelLinear _head;

    /// <summary>gpt-mini of <paramref name="config"/>'s sizes split over <paramref name="group"/>, initialised as the
    /// one-rank model from the same <paramref name="generator"/> would be.</summary>
    public ParallelGptMini(GptMiniConfig config, IProcessGroup group, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(group);
        if (config.Heads % group.Size != 0)
            throw new ArgumentException(
                $"tensor-parallel gpt-mini: {config.Heads} heads do not split over {group.Size} ranks"
            );
        var g = generator ?? Generator.Default;
        _config = config;
        _wte = RegisterModule("wte", new VocabParallelEmbedding(config.Vocab, config.Dim, group, g));
        _wpe = RegisterModule("wpe", new Embedding(config.Context, config.Dim, g));
        var h = RegisterModule("h", new Sequential());
        _blocks = new Block[config.Layers];
        for (int i = 0; i < config.Layers; i++)
            h.Add(_blocks[i] = new Block(config, group, g));
        _lnF = RegisterModule("ln_f", new LayerNorm(config.Dim));
        _head = RegisterModule(
            "lm_head",
            new ColumnParallelLinear(config.Dim, config.Vocab, group, bias: false, generator: g)
        );
    }

    /// <summary>Token ids [B, T] → this rank's logits [B, T, V/n].</summary>
    public override Tensor Forward(Tensor input) =>
        GptMini.Decode(input, _config.Context, _wte, _wpe, _blocks, _lnF, _head);

    private sealed class Block : Module
    {
        private readonly LayerNorm _ln1,
            _ln2;
        private readonly Attention _attn;
        private readonly Mlp _mlp;

        public Block(GptMiniConfig c, IProcessGroup group, Generator g)
        {
            _ln1 = RegisterModule("ln_1", new LayerNorm(c.Dim));
            _attn = RegisterModule("attn", new Attention(c, group, g));
            _ln2 = RegisterModule("ln_2", new LayerNorm(c.Dim));
            _mlp = RegisterModule("mlp", new Mlp(c, group, g));
        }

        public override Tensor Forward(Tensor input) => GptMini.ResidualBlock(input, _ln1, _attn, _ln2, _mlp);
    }

    private sealed class Attention : Module
    {
        private readonly QkvParallelLinear _qkv;
        private readonly RowParallelLinear _proj;
        private readonly int _localHeads,
            _headDim;

        public Attention(GptMiniConfig c, IProcessGroup group, Generator g)
        {
            _localHeads = c.Heads / group.Size;
            _headDim = c.Dim / c.Heads;
            _qkv = RegisterModule("c_attn", new QkvParallelLinear(c.Dim, group, g));
            _proj = RegisterModule("c_proj", new RowParallelLinear(c.Dim, c.Dim, group, generator: g));
        }

        public override Tensor Forward(Tensor input)
        {
            using var qkv = _qkv.Forward(input);
            using var merged = GptMini.CausalHeads(qkv, _localHeads, _headDim);
            return _proj.Forward(merged);
        }
    }

    private sealed class Mlp : Module
    {
        private readonly ColumnParallelLinear _fc;
        private readonly RowParallelLinear _proj;

        public Mlp(GptMiniConfig c, IProcessGroup group, Generator g)
        {
            _fc = RegisterModule("c_fc", new ColumnParallelLinear(c.Dim, 4 * c.Dim, group, generator: g));
            _proj = RegisterModule("c_proj", new RowParallelLinear(4 * c.Dim, c.Dim, group, generator: g));
        }

        public override Tensor Forward(Tensor input)
        {
            using var h = _fc.Forward(input);
            using var a = F.Gelu(h, "tanh");
            return _proj.Forward(a);
        }
    }
}
