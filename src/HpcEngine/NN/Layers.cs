namespace HpcEngine.NN;

/// <summary>y = x·Wᵀ + b. Weight [out, in] and bias [out], initialised like PyTorch.</summary>
public sealed class Linear : Module
{
    /// <summary>The weight [out, in] (parameter "weight").</summary>
    public Tensor Weight { get; }

    /// <summary>The bias [out] (parameter "bias"), or null when built without one.</summary>
    public Tensor? Bias { get; }

    /// <summary>Size of each input row.</summary>
    public int InFeatures { get; }

    /// <summary>Size of each output row.</summary>
    public int OutFeatures { get; }

    /// <summary>A layer from <paramref name="inFeatures"/> to <paramref name="outFeatures"/>, weight and bias drawn
    /// from U(−1/√in, 1/√in) with <paramref name="generator"/> (default: the process's default generator).</summary>
    public Linear(int inFeatures, int outFeatures, bool bias = true, Generator? generator = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inFeatures);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outFeatures);
        var g = generator ?? Generator.Default;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = RegisterParameter("weight", Init.UniformFanIn([outFeatures, inFeatures], inFeatures, g));
        if (bias)
            Bias = RegisterParameter("bias", Init.UniformFanIn([outFeatures], inFeatures, g));
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Ops.Linear(input, Weight, Bias);

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"in_features={InFeatures}, out_features={OutFeatures}, bias={Bias != null}";
}

/// <summary>2-D convolution over [N, C, H, W].</summary>
public sealed class Conv2d : Module
{
    /// <summary>The filters [out, in / groups, k, k].</summary>
    public Tensor Weight { get; }

    /// <summary>The bias [out], or null.</summary>
    public Tensor? Bias { get; }
    private readonly int _stride,
        _padding,
        _dilation,
        _groups;

    /// <summary>A square-kernel convolution, initialised like PyTorch (U(−1/√fan_in, 1/√fan_in)); the channel counts
    /// must be divisible by <paramref name="groups"/>.</summary>
    public Conv2d(
        int inChannels,
        int outChannels,
        int kernelSize,
        int stride = 1,
        int padding = 0,
        int dilation = 1,
        int groups = 1,
        bool bias = true,
        Generator? generator = null
    )
    {
        if (inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException(
                $"conv2d: in ({inChannels}) and out ({outChannels}) channels must be divisible by groups ({groups})"
            );
        var g = generator ?? Generator.Default;
        int fanIn = inChannels / groups * kernelSize * kernelSize;
        Weight = RegisterParameter(
            "weight",
            Init.UniformFanIn([outChannels, inChannels / groups, kernelSize, kernelSize], fanIn, g)
        );
        if (bias)
            Bias = RegisterParameter("bias", Init.UniformFanIn([outChannels], fanIn, g));
        (_stride, _padding, _dilation, _groups) = (stride, padding, dilation, groups);
    }

    /// <summary>The stride (both dims).</summary>
    public int Stride => _stride;

    /// <summary>The zero padding on each side (both dims).</summary>
    public int Padding => _padding;

    /// <summary>The dilation (both dims).</summary>
    public int Dilation => _dilation;

    /// <summary>The channel groups.</summary>
    public int Groups => _groups;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) =>
        F.Conv2d(input, Weight, Bias, _stride, _padding, _dilation, _groups);

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"{Weight.Shape[1] * _groups}, {Weight.Shape[0]}, kernel_size={Weight.Shape[2]}, stride={_stride}, "
        + $"padding={_padding}";
}

/// <summary>Batch normalisation over the channel dim of [N, C] (1d) or [N, C, H, W] (2d), with running statistics
/// and PyTorch's buffers (running_mean, running_var, num_batches_tracked).</summary>
public class BatchNorm : Module
{
    /// <summary>The per-channel scale γ (ones at first).</summary>
    public Tensor Weight { get; }

    /// <summary>The per-channel shift β (zeros at first).</summary>
    public Tensor Bias { get; }

    /// <summary>The running mean used in eval mode (buffer "running_mean").</summary>
    public Tensor RunningMean { get; }

    /// <summary>The running (unbiased) variance used in eval mode (buffer "running_var").</summary>
    public Tensor RunningVar { get; }

    /// <summary>How many training batches updated the running statistics (buffer "num_batches_tracked").</summary>
    public Tensor NumBatchesTracked { get; }

    /// <summary>The running statistics' update weight: new = (1 − momentum)·old + momentum·batch.</summary>
    public double Momentum { get; }

    /// <summary>Added to the variance before the square root.</summary>
    public double Eps { get; }
    private readonly int _rank;

    /// <summary>Batch norm over <paramref name="numFeatures"/> channels of rank-<paramref name="rank"/>
    /// input.</summary>
    protected BatchNorm(int numFeatures, int rank, double eps, double momentum)
    {
        _rank = rank;
        Eps = eps;
        Momentum = momentum;
        Weight = RegisterParameter("weight", Tensor.Ones([numFeatures]));
        Bias = RegisterParameter("bias", Tensor.Zeros([numFeatures]));
        RunningMean = RegisterBuffer("running_mean", Tensor.Zeros([numFeatures]));
        RunningVar = RegisterBuffer("running_var", Tensor.Ones([numFeatures]));
        NumBatchesTracked = RegisterBuffer("num_batches_tracked", Tensor.Zeros([], DType.Int64));
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank != _rank && !(_rank == 2 && input.Rank == 3))
            throw new ShapeMismatchException(
                $"{GetType().Name}: expected a {_rank}-D input, got {Shapes.Format(input.Shape)}"
            );
        if (Training)
            using (Autograd.GradMode.NoGrad())
            {
                // A counter of one int64: read and rewritten (on a device a round trip costs less than an integer
                // kernel would).
                NumBatchesTracked.FillRaw(NumBatchesTracked.Item() + 1);
            }
        return F.BatchNorm(input, RunningMean, RunningVar, Weight, Bias, Training, Momentum, Eps);
    }

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{Weight.Shape[0]}, eps={Eps}, momentum={Momentum}";
}

/// <summary>Batch norm over [N, C] or [N, C, L].</summary>
public sealed class BatchNorm1d(int numFeatures, double eps = 1e-5, double momentum = 0.1)
    : BatchNorm(numFeatures, 2, eps, momentum);

/// <summary>Batch norm over [N, C, H, W].</summary>
public sealed class BatchNorm2d(int numFeatures, double eps = 1e-5, double momentum = 0.1)
    : BatchNorm(numFeatures, 4, eps, momentum);

/// <summary>Layer normalisation over the trailing <c>normalizedShape</c> dims, with affine weight and bias.</summary>
public sealed class LayerNorm : Module
{
    /// <summary>The elementwise scale (ones at first), shaped as the normalised dims.</summary>
    public Tensor Weight { get; }

    /// <summary>The elementwise shift (zeros at first).</summary>
    public Tensor Bias { get; }
    private readonly int[] _shape;
    private readonly double _eps;

    /// <summary>Normalises over the trailing dims shaped <paramref name="normalizedShape"/>.</summary>
    public LayerNorm(int[] normalizedShape, double eps = 1e-5)
    {
        _shape = (int[])normalizedShape.Clone();
        _eps = eps;
        Weight = RegisterParameter("weight", Tensor.Ones(_shape));
        Bias = RegisterParameter("bias", Tensor.Zeros(_shape));
    }

    /// <summary>Normalises over the last dim, of size <paramref name="dim"/>.</summary>
    public LayerNorm(int dim, double eps = 1e-5)
        : this([dim], eps) { }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.LayerNorm(input, _shape, Weight, Bias, _eps);

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{Shapes.Format(_shape)}, eps={_eps}";
}

/// <summary>Dropout with probability p in training mode; the identity in eval. Masks come from its generator.</summary>
public sealed class Dropout(double p = 0.5, Generator? generator = null) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Dropout(input, p, Training, generator);

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"p={p}";
}

/// <summary>A lookup table [num, dim] of embeddings, initialised N(0, 1) like PyTorch.</summary>
public sealed class Embedding : Module
{
    /// <summary>The table [num, dim].</summary>
    public Tensor Weight { get; }

    /// <summary>A table of <paramref name="numEmbeddings"/> rows of size <paramref name="dim"/>.</summary>
    public Embedding(int numEmbeddings, int dim, Generator? generator = null)
    {
        Weight = RegisterParameter("weight", Init.Normal([numEmbeddings, dim], 1.0, generator ?? Generator.Default));
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Embedding(input, Weight);

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{Weight.Shape[0]}, {Weight.Shape[1]}";
}

/// <summary>Flattens dims startDim..endDim (default: all but the batch dim).</summary>
public sealed class Flatten(int startDim = 1, int endDim = -1) : Module
{
    /// <summary>The first dim flattened.</summary>
    public int StartDim => startDim;

    /// <summary>The last dim flattened (−1: the last).</summary>
    public int EndDim => endDim;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => Ops.Flatten(input, startDim, endDim);
}

/// <summary>2-D max pooling (for return_indices call <see cref="F.MaxPool2dWithIndices"/>: a module's forward
/// returns one tensor).</summary>
public sealed class MaxPool2d(
    int kernelSize,
    int? stride = null,
    int padding = 0,
    int dilation = 1,
    bool ceilMode = false
) : Module
{
    /// <summary>The window (both dims).</summary>
    public int KernelSize => kernelSize;

    /// <summary>The stride (both dims; the window by default).</summary>
    public int Stride => stride ?? kernelSize;

    /// <summary>The padding on each side.</summary>
    public int Padding => padding;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.MaxPool2d(input, kernelSize, stride, padding, dilation, ceilMode);

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"kernel_size={kernelSize}, stride={stride ?? kernelSize}, padding={padding}, dilation={dilation}, "
        + $"ceil_mode={ceilMode}";
}

/// <summary>2-D average pooling.</summary>
public sealed class AvgPool2d(
    int kernelSize,
    int? stride = null,
    int padding = 0,
    bool ceilMode = false,
    bool countIncludePad = true
) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) =>
        F.AvgPool2d(input, kernelSize, stride, padding, countIncludePad, ceilMode);

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"kernel_size={kernelSize}, stride={stride ?? kernelSize}, padding={padding}, ceil_mode={ceilMode}";
}

/// <summary>max(x, 0).</summary>
public sealed class ReLU : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Relu(input);
}

/// <summary>x·Φ(x); <c>approximate: "tanh"</c> for the tanh form.</summary>
public sealed class GELU(string approximate = "none") : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Gelu(input, approximate);
}

/// <summary>tanh(x).</summary>
public sealed class Tanh : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Tanh(input);
}

/// <summary>1/(1 + e⁻ˣ).</summary>
public sealed class Sigmoid : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Sigmoid(input);
}

/// <summary>x·sigmoid(x).</summary>
public sealed class SiLU : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Silu(input);
}

/// <summary>x, or negativeSlope·x below 0.</summary>
public sealed class LeakyReLU(double negativeSlope = 0.01) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.LeakyRelu(input, negativeSlope);
}

/// <summary>Runs children in order; they are named "0", "1", ... as in PyTorch.</summary>
public sealed class Sequential : Module
{
    private readonly List<Module> _layers = new();

    /// <summary>The layers to run, in order.</summary>
    public Sequential(params Module[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        foreach (var l in layers)
            Add(l);
    }

    /// <summary>Appends a layer.</summary>
    public Sequential Add(Module layer)
    {
        RegisterModule(_layers.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), layer);
        _layers.Add(layer);
        return this;
    }

    /// <summary>The layers, in order.</summary>
    public IReadOnlyList<Module> Layers => _layers;

    /// <summary>Runs each layer on the previous one's output; intermediate handles are released as it goes (the graph
    /// keeps what backward needs).</summary>
    public override Tensor Forward(Tensor input)
    {
        var x = Ops.Identity(input);
        foreach (var l in _layers)
            x = x.Replace(l.Forward(x));
        return x;
    }
}
