namespace HpcEngine.NN;

/// <summary>1-d convolution with PyTorch's initialisation and state-dict names (weight [out, in / groups, k],
/// bias [out]).</summary>
public sealed class Conv1d : Module
{
    private readonly int _stride,
        _padding,
        _dilation,
        _groups;

    /// <summary>The filters [out, in / groups, k].</summary>
    public Tensor Weight { get; }

    /// <summary>The bias [out], or null.</summary>
    public Tensor? Bias { get; }

    /// <summary>A convolution over [N, C, L], initialised U(−1/√fan_in, 1/√fan_in) as PyTorch.</summary>
    public Conv1d(
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
                $"conv1d: in ({inChannels}) and out ({outChannels}) channels must be divisible by groups ({groups})"
            );
        var g = generator ?? Generator.Default;
        int fanIn = inChannels / groups * kernelSize;
        Weight = RegisterParameter(
            "weight",
            Init.UniformFanIn([outChannels, inChannels / groups, kernelSize], fanIn, g)
        );
        if (bias)
            Bias = RegisterParameter("bias", Init.UniformFanIn([outChannels], fanIn, g));
        (_stride, _padding, _dilation, _groups) = (stride, padding, dilation, groups);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) =>
        F.Conv1d(input, Weight, Bias, _stride, _padding, _dilation, _groups);

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"{Weight.Shape[1] * _groups}, {Weight.Shape[0]}, kernel_size={Weight.Shape[2]}, stride={_stride}, "
        + $"padding={_padding}";
}

/// <summary>torch.nn.MaxPool1d.</summary>
public sealed class MaxPool1d(int kernelSize, int? stride = null, int padding = 0, int dilation = 1) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.MaxPool1d(input, kernelSize, stride, padding, dilation);
}

/// <summary>torch.nn.AvgPool1d.</summary>
public sealed class AvgPool1d(int kernelSize, int? stride = null, int padding = 0, bool countIncludePad = true) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.AvgPool1d(input, kernelSize, stride, padding, countIncludePad);
}

/// <summary>torch.nn.AdaptiveAvgPool2d: any [.., H, W] to [.., outH, outW] (global average pooling at (1, 1)).</summary>
public sealed class AdaptiveAvgPool2d((int H, int W) outputSize) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.AdaptiveAvgPool2d(input, outputSize);
}

/// <summary>torch.nn.AdaptiveMaxPool2d (values only).</summary>
public sealed class AdaptiveMaxPool2d((int H, int W) outputSize) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.AdaptiveMaxPool2d(input, outputSize);
}
