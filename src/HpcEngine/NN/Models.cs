namespace HpcEngine.NN;

/// <summary>The models the benchmarks use, by name. Each is built deterministically from a generator.</summary>
public static class Models
{
    /// <summary>The names <see cref="Create(string, Generator?)"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = ["mlp", "mlp-wide", "cnn", "gpt-mini"];

    /// <summary>Builds a model for Fashion-MNIST: <c>mlp</c> (784-256-128-100-10, the MLP row of Fashion-MNIST's
    /// benchmark table), <c>mlp-wide</c> (784-1024-1024-10), <c>cnn</c> (2 × conv-bn-relu-pool, then 2 linear),
    /// <c>gpt-mini</c> (see <see cref="GptMini"/>).</summary>
    public static Module Create(string name, Generator? generator = null) =>
        name == "gpt-mini" ? new GptMini(GptMiniConfig.Default, generator ?? Generator.Default)
        : Names.Contains(name) ? Create(name, generator, [1, 28, 28], 10)
        : throw new ArgumentException($"unknown model '{name}': use one of {string.Join(", ", Names)}", nameof(name));

    /// <summary>Builds a classifier of samples shaped <paramref name="sampleShape"/> into <paramref name="classes"/>
    /// classes: <c>mlp</c> and <c>mlp-wide</c> take any shape (flattened: F-256-128-100-K, F-1024-1024-K), <c>cnn</c>
    /// images [C, H, W] of at least 4 × 4 (two 2 × 2 poolings, then 64 · ⌊H/4⌋ · ⌊W/4⌋ features into the first
    /// linear). For [1, 28, 28] and 10 classes these are the Fashion-MNIST models.</summary>
    public static Module Create(string name, Generator? generator, IReadOnlyList<int> sampleShape, int classes)
    {
        ArgumentNullException.ThrowIfNull(sampleShape);
        var g = generator ?? Generator.Default;
        if (classes < 2)
            throw new ArgumentOutOfRangeException(
                nameof(classes),
                $"a classifier needs at least 2 classes, got {classes}"
            );
        int features = sampleShape.Aggregate(1, (a, b) => a * b);
        if (sampleShape.Count == 0 || features <= 0)
            throw new ArgumentException($"model {name}: sample shape [{string.Join(", ", sampleShape)}] is empty");
        return name switch
        {
            "mlp" => new Sequential(
                new Flatten(),
                new Linear(features, 256, generator: g),
                new ReLU(),
                new Linear(256, 128, generator: g),
                new ReLU(),
                new Linear(128, 100, generator: g),
                new ReLU(),
                new Linear(100, classes, generator: g)
            ),
            "mlp-wide" => new Sequential(
                new Flatten(),
                new Linear(features, 1024, generator: g),
                new ReLU(),
                new Linear(1024, 1024, generator: g),
                new ReLU(),
                new Linear(1024, classes, generator: g)
            ),
            "cnn" => Cnn(g, sampleShape, classes),
            _ => throw new ArgumentException(
                $"unknown model '{name}' for a [{string.Join(", ", sampleShape)}] input: use mlp, mlp-wide or cnn",
                nameof(name)
            ),
        };
    }

    private static Sequential Cnn(Generator g, IReadOnlyList<int> shape, int classes)
    {
        if (shape.Count != 3 || shape[1] < 4 || shape[2] < 4)
            throw new ArgumentException(
                $"model cnn takes images [C, H, W] of at least 4 × 4; these samples are [{string.Join(", ", shape)}] "
                    + "(use mlp or mlp-wide for feature vectors)"
            );
        return new Sequential(
            new Conv2d(shape[0], 32, 3, padding: 1, generator: g),
            new BatchNorm2d(32),
            new ReLU(),
            new MaxPool2d(2),
            new Conv2d(32, 64, 3, padding: 1, generator: g),
            new BatchNorm2d(64),
            new ReLU(),
            new MaxPool2d(2),
            new Flatten(),
            new Linear(64 * (shape[1] / 4) * (shape[2] / 4), 128, generator: g),
            new ReLU(),
            new Linear(128, classes, generator: g)
        );
    }

    /// <summary>The input one sample of the model takes: [1, 28, 28] images for the vision models, token ids for
    /// gpt-mini.</summary>
    public static int[] SampleShape(string name) => name == "gpt-mini" ? [GptMiniConfig.Default.Context] : [1, 28, 28];
}

/// <summary>Size of a <see cref="GptMini"/>.</summary>
public sealed record GptMiniConfig(int Vocab, int Context, int Dim, int Heads, int Layers)
{
    /// <summary>Byte-level vocabulary, 64 tokens of context, width 128, 4 heads, 2 blocks (~0.5 M
    /// parameters).</summary>
    public static GptMiniConfig Default { get; } = new(256, 64, 128, 4, 2);
}

/// <summary>A small decoder-only transformer (GPT-2 layout, pre-norm): token + position embedding, blocks of
/// causal self-attention and a GELU MLP each behind a layer norm and a residual, a final layer norm and a linear head.
/// Input: int64 token ids [B, T]; output: logits [B, T, vocab]. Names follow nanoGPT/GPT-2
/// (wte, wpe, h.0.attn.c_attn ...).</summary>
public sealed class GptMini : Module
{
    /// <summary>The sizes this model was built with.</summary>
    public GptMiniConfig Config { get; }
    private readonly Embedding _wte,
        _wpe;
    private readonly Block[] _blocks;
    private readonly LayerNorm _lnF;
    private readonly Linear _head;

    /// <summary>A model of <paramref name="config"/>'s sizes, initialised from <paramref name="generator"/> (default:
    /// the process's default generator).</summary>
    public GptMini(GptMiniConfig config, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Dim % config.Heads != 0)
            throw new ArgumentException($"gpt-mini: dim {config.Dim} must be divisible by heads {config.Heads}");
        var g = generator ?? Generator.Default;
        Config = config;
        _wte = RegisterModule("wte", new Embedding(config.Vocab, config.Dim, g));
        _wpe = RegisterModule("wpe", new Embedding(config.Context, config.Dim, g));
        var h = RegisterModule("h", new Sequential());
        _blocks = new Block[config.Layers];
        for (int i = 0; i < config.Layers; i++)
            h.Add(_blocks[i] = new Block(config, g));
        _lnF = RegisterModule("ln_f", new LayerNorm(config.Dim));
        _head = RegisterModule("lm_head", new Linear(config.Dim, config.Vocab, bias: false, generator: g));
    }

    /// <summary>The same network as a <see cref="Sequential"/> — [token + position embedding, block 0, …, final layer
    /// norm, head] — for splitting into pipeline stages. Built in the same order from <paramref name="generator"/>, so
    /// its parameters equal, in order, those of <c>new GptMini(config, generator)</c>.</summary>
    public static Sequential CreateSequential(GptMiniConfig config, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Dim % config.Heads != 0)
            throw new ArgumentException($"gpt-mini: dim {config.Dim} must be divisible by heads {config.Heads}");
        var g = generator ?? Generator.Default;
        var seq = new Sequential(new Embeddings(config, g));
        for (int i = 0; i < config.Layers; i++)
            seq.Add(new Block(config, g));
        seq.Add(new LayerNorm(config.Dim));
        seq.Add(new Linear(config.Dim, config.Vocab, bias: false, generator: g));
        return seq;
    }

    /// <summary>Token ids [B, T] → token + position embeddings [B, T, D] (the first layer of <see
    /// cref="CreateSequential"/>).</summary>
    private sealed class Embeddings : Module
    {
        private readonly Embedding _wte,
            _wpe;
        private readonly int _context;

        public Embeddings(GptMiniConfig c, Generator g)
        {
            _context = c.Context;
            _wte = RegisterModule("wte", new Embedding(c.Vocab, c.Dim, g));
            _wpe = RegisterModule("wpe", new Embedding(c.Context, c.Dim, g));
        }

        public override Tensor Forward(Tensor input) => Embed(input, _context, _wte, _wpe);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Decode(input, Config.Context, _wte, _wpe, _blocks, _lnF, _head);

    /// <summary>Token ids [B, T] (checked against the context) → token + position embeddings [B, T, D].</summary>
    internal static Tensor Embed(Tensor input, int context, Module wte, Module wpe)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank != 2 || input.Shape[1] > context)
            throw new ShapeMismatchException(
                $"gpt-mini: expected token ids [batch, time ≤ {context}], got {Shapes.Format(input.Shape)}"
            );
        using var pos = Tensor.Arange(input.Shape[1]);
        using var tok = wte.Forward(input);
        using var pe = wpe.Forward(pos);
        return Ops.Add(tok, pe);
    }

    /// <summary>The whole network: embeddings, blocks, final norm, head. Shared with the tensor-parallel model, whose
    /// modules are the parallel ones.</summary>
    internal static Tensor Decode(
        Tensor input,
        int context,
        Module wte,
        Module wpe,
        IEnumerable<Module> blocks,
        Module lnF,
        Module head
    )
    {
        var x = Embed(input, context, wte, wpe);
        foreach (var b in blocks)
            x = x.Replace(b.Forward(x));
        using var n = lnF.Forward(x);
        x.Dispose();
        return head.Forward(n);
    }

    /// <summary>One pre-norm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(·)).</summary>
    internal static Tensor ResidualBlock(Tensor input, Module ln1, Module attn, Module ln2, Module mlp)
    {
        using var n1 = ln1.Forward(input);
        using var a = attn.Forward(n1);
        using var x = Ops.Add(input, a);
        using var n2 = ln2.Forward(x);
        using var m = mlp.Forward(n2);
        return Ops.Add(x, m);
    }

    private sealed class Block : Module
    {
        private readonly LayerNorm _ln1,
            _ln2;
        private readonly Attention _attn;
        private readonly Mlp _mlp;

        public Block(GptMiniConfig c, Generator g)
        {
            _ln1 = RegisterModule("ln_1", new LayerNorm(c.Dim));
            _attn = RegisterModule("attn", new Attention(c, g));
            _ln2 = RegisterModule("ln_2", new LayerNorm(c.Dim));
            _mlp = RegisterModule("mlp", new Mlp(c, g));
        }

        public override Tensor Forward(Tensor input) => ResidualBlock(input, _ln1, _attn, _ln2, _mlp);
    }

    private sealed class Attention : Module
    {
        private readonly Linear _qkv,
            _proj;
        private readonly int _heads;

        public Attention(GptMiniConfig c, Generator g)
        {
            _heads = c.Heads;
            _qkv = RegisterModule("c_attn", new Linear(c.Dim, 3 * c.Dim, generator: g));
            _proj = RegisterModule("c_proj", new Linear(c.Dim, c.Dim, generator: g));
        }

        public override Tensor Forward(Tensor input)
        {
            using var qkv = _qkv.Forward(input);
            using var merged = CausalHeads(qkv, _heads, input.Shape[2] / _heads);
            return _proj.Forward(merged);
        }
    }

    /// <summary>Causal self-attention over fused projections: qkv [B, T, 3·H·hd] (q | k | v) → [B, T, H·hd], each of
    /// the H heads attending to earlier positions only. Shared with the tensor-parallel model, whose ranks hold H/n
    /// heads.</summary>
    internal static Tensor CausalHeads(Tensor qkv, int heads, int headDim)
    {
        int b = qkv.Shape[0],
            t = qkv.Shape[1],
            width = heads * headDim;
        var parts = Ops.Split(qkv, width, 2);
        try
        {
            // [B, T, H·hd] -> [B, H, T, hd]
            using var q4 = parts[0].Reshape(b, t, heads, headDim);
            using var k4 = parts[1].Reshape(b, t, heads, headDim);
            using var v4 = parts[2].Reshape(b, t, heads, headDim);
            using var q = q4.Transpose(1, 2);
            using var k = k4.Transpose(1, 2);
            using var v = v4.Transpose(1, 2);
            using var y = F.ScaledDotProductAttention(q, k, v, isCausal: true);
            using var yt = y.Transpose(1, 2);
            return yt.Reshape(b, t, width);
        }
        finally
        {
            foreach (var p in parts)
                p.Dispose();
        }
    }

    private sealed class Mlp : Module
    {
        private readonly Linear _fc,
            _proj;

        public Mlp(GptMiniConfig c, Generator g)
        {
            _fc = RegisterModule("c_fc", new Linear(c.Dim, 4 * c.Dim, generator: g));
            _proj = RegisterModule("c_proj", new Linear(4 * c.Dim, c.Dim, generator: g));
        }

        public override Tensor Forward(Tensor input)
        {
            using var h = _fc.Forward(input);
            using var a = F.Gelu(h, "tanh");
            return _proj.Forward(a);
        }
    }
}
