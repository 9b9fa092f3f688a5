namespace HpcEngine.NN;

/// <summary>torch.nn.ConvTranspose2d: PyTorch's initialisation and state-dict names (weight [in, out / groups, KH,
/// KW], bias [out]).</summary>
public sealed class ConvTranspose2d : Module
{
    private readonly int _stride,
        _padding,
        _outputPadding,
        _groups,
        _dilation;

    /// <summary>The filters [in, out / groups, KH, KW].</summary>
    public Tensor Weight { get; }

    /// <summary>The bias [out], or null.</summary>
    public Tensor? Bias { get; }

    /// <summary>A transposed convolution over [N, C, H, W] with a square kernel, initialised U(−1/√fan_in,
    /// 1/√fan_in) as PyTorch, whose fan-in for this weight is out / groups · k² (its dimension 1).</summary>
    public ConvTranspose2d(
        int inChannels,
        int outChannels,
        int kernelSize,
        int stride = 1,
        int padding = 0,
        int outputPadding = 0,
        int groups = 1,
        bool bias = true,
        int dilation = 1,
        Generator? generator = null
    )
    {
        if (groups < 1 || inChannels % groups != 0 || outChannels % groups != 0)
            throw new ArgumentException(
                $"conv_transpose2d: in ({inChannels}) and out ({outChannels}) channels must be divisible by groups "
                    + $"({groups})"
            );
        var g = generator ?? Generator.Default;
        int fanIn = outChannels / groups * kernelSize * kernelSize;
        Weight = RegisterParameter(
            "weight",
            Init.UniformFanIn([inChannels, outChannels / groups, kernelSize, kernelSize], fanIn, g)
        );
        if (bias)
            Bias = RegisterParameter("bias", Init.UniformFanIn([outChannels], fanIn, g));
        (_stride, _padding, _outputPadding, _groups, _dilation) = (stride, padding, outputPadding, groups, dilation);
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) =>
        F.ConvTranspose2d(input, Weight, Bias, _stride, _padding, _outputPadding, _groups, _dilation);

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"{Weight.Shape[0]}, {Weight.Shape[1] * _groups}, kernel_size={Weight.Shape[2]}, stride={_stride}, "
        + $"padding={_padding}, output_padding={_outputPadding}";
}
