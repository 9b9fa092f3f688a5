namespace HpcEngine.NN;

/// <summary>ELU (torch.nn.ELU).</summary>
public sealed class ELU(double alpha = 1.0) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Elu(input, alpha);
}

/// <summary>SELU (torch.nn.SELU).</summary>
public sealed class SELU : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Selu(input);
}

/// <summary>CELU (torch.nn.CELU).</summary>
public sealed class CELU(double alpha = 1.0) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Celu(input, alpha);
}

/// <summary>Softplus (torch.nn.Softplus): log(1 + e^(βx)) / β, the identity above the threshold.</summary>
public sealed class Softplus(double beta = 1.0, double threshold = 20.0) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Softplus(input, beta, threshold);
}

/// <summary>Mish (torch.nn.Mish).</summary>
public sealed class Mish : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Mish(input);
}

/// <summary>torch.nn.PReLU: a learned negative slope, one or one per channel; state dict "weight".</summary>
public sealed class PReLU : Module
{
    /// <summary>The slopes [numParameters].</summary>
    public Tensor Weight { get; }

    /// <summary>A PReLU with PyTorch's defaults (one slope, 0.25).</summary>
    public PReLU(int numParameters = 1, double init = 0.25) =>
        Weight = RegisterParameter("weight", Tensor.Full([numParameters], init));

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Prelu(input, Weight);
}

/// <summary>Log-sigmoid (torch.nn.LogSigmoid).</summary>
public sealed class LogSigmoid : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.LogSigmoid(input);
}

/// <summary>Hardtanh (torch.nn.Hardtanh): clamp into [min, max].</summary>
public sealed class Hardtanh(double min = -1.0, double max = 1.0) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Hardtanh(input, min, max);
}

/// <summary>ReLU6 (torch.nn.ReLU6).</summary>
public sealed class ReLU6 : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Relu6(input);
}

/// <summary>Hardsigmoid (torch.nn.Hardsigmoid).</summary>
public sealed class Hardsigmoid : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Hardsigmoid(input);
}

/// <summary>Hardswish (torch.nn.Hardswish).</summary>
public sealed class Hardswish : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Hardswish(input);
}

/// <summary>Softsign (torch.nn.Softsign).</summary>
public sealed class Softsign : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Softsign(input);
}

/// <summary>GLU (torch.nn.GLU): the first half of <c>dim</c> gated by the sigmoid of the second.</summary>
public sealed class GLU(int dim = -1) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Glu(input, dim);
}

/// <summary>Upsampling (torch.nn.Upsample): <see cref="F.Interpolate"/> by a size or a scale factor.</summary>
public sealed class Upsample(
    int[]? size = null,
    double[]? scaleFactor = null,
    string mode = "nearest",
    bool? alignCorners = null
) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Interpolate(input, size, scaleFactor, mode, alignCorners);
}
