namespace HpcEngine.NN;

/// <summary>Group normalisation (torch.nn.GroupNorm): the channels split into groups, each sample's group normalised,
/// then the per-channel affine weight and bias (state dict "weight", "bias").</summary>
public sealed class GroupNorm : Module
{
    /// <summary>The per-channel scale (ones at first), or null without affine.</summary>
    public Tensor? Weight { get; }

    /// <summary>The per-channel shift (zeros at first), or null without affine.</summary>
    public Tensor? Bias { get; }
    private readonly int _groups,
        _channels;
    private readonly double _eps;

    /// <summary><paramref name="numGroups"/> groups over <paramref name="numChannels"/> channels.</summary>
    public GroupNorm(int numGroups, int numChannels, double eps = 1e-5, bool affine = true)
    {
        if (numGroups < 1 || numChannels % numGroups != 0)
            throw new ArgumentException(
                $"GroupNorm: {numChannels} channels do not split into {numGroups} groups",
                nameof(numGroups)
            );
        (_groups, _channels, _eps) = (numGroups, numChannels, eps);
        if (affine)
        {
            Weight = RegisterParameter("weight", Tensor.Ones([numChannels]));
            Bias = RegisterParameter("bias", Tensor.Zeros([numChannels]));
        }
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.GroupNorm(input, _groups, Weight, Bias, _eps);

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{_groups}, {_channels}, eps={_eps}, affine={Weight != null}";
}

/// <summary>Instance normalisation without running statistics (torch.nn.InstanceNorm1d / 2d with the default
/// track_running_stats=False): each sample's channel normalised over its positions; affine is off by default, as in
/// PyTorch.</summary>
public sealed class InstanceNorm : Module
{
    /// <summary>The per-channel scale, or null without affine.</summary>
    public Tensor? Weight { get; }

    /// <summary>The per-channel shift, or null without affine.</summary>
    public Tensor? Bias { get; }
    private readonly int _features;
    private readonly double _eps;

    /// <summary>Over <paramref name="numFeatures"/> channels.</summary>
    public InstanceNorm(int numFeatures, double eps = 1e-5, bool affine = false)
    {
        (_features, _eps) = (numFeatures, eps);
        if (affine)
        {
            Weight = RegisterParameter("weight", Tensor.Ones([numFeatures]));
            Bias = RegisterParameter("bias", Tensor.Zeros([numFeatures]));
        }
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank < 3 || input.Shape[1] != _features)
            throw new ShapeMismatchException(
                $"InstanceNorm({_features}): expects [N, {_features}, positions...], got {Shapes.Format(input.Shape)}"
            );
        return F.InstanceNorm(input, Weight, Bias, _eps);
    }

    /// <inheritdoc/>
    protected override string ExtraRepr() => $"{_features}, eps={_eps}, affine={Weight != null}";
}

/// <summary>RMS normalisation (torch.nn.RMSNorm): x / √(mean(x²) + eps) over the trailing dims, times an elementwise
/// weight (state dict "weight"); eps defaults to the dtype's machine epsilon.</summary>
public sealed class RMSNorm : Module
{
    /// <summary>The elementwise scale (ones at first), or null without an affine weight.</summary>
    public Tensor? Weight { get; }
    private readonly int[] _shape;
    private readonly double? _eps;

    /// <summary>Over the trailing dims shaped <paramref name="normalizedShape"/>.</summary>
    public RMSNorm(int[] normalizedShape, double? eps = null, bool elementwiseAffine = true)
    {
        ArgumentNullException.ThrowIfNull(normalizedShape);
        _shape = (int[])normalizedShape.Clone();
        _eps = eps;
        if (elementwiseAffine)
            Weight = RegisterParameter("weight", Tensor.Ones(_shape));
    }

    /// <summary>Over the last dim, of size <paramref name="dim"/>.</summary>
    public RMSNorm(int dim, double? eps = null)
        : this([dim], eps) { }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.RmsNorm(input, _shape, Weight, _eps);

    /// <inheritdoc/>
    protected override string ExtraRepr() =>
        $"{Shapes.Format(_shape)}, eps={_eps?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "None"}";
}
