namespace HpcEngine.NN;

/// <summary>torch.nn.Unfold: the sliding blocks of [N, C, H, W] as columns [N, C·k·k, L] (<see cref="F.Unfold(Tensor,
/// int, int, int, int)"/>).</summary>
public sealed class Unfold(int kernelSize, int dilation = 1, int padding = 0, int stride = 1) : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Unfold(input, kernelSize, dilation, padding, stride);
}

/// <summary>torch.nn.Fold: columns [N, C·k·k, L] summed back into [N, C, H, W] (<see cref="F.Fold(Tensor,
/// ValueTuple{int, int}, int, int, int, int)"/>).</summary>
public sealed class Fold((int H, int W) outputSize, int kernelSize, int dilation = 1, int padding = 0, int stride = 1)
    : Module
{
    /// <inheritdoc/>
    public override Tensor Forward(Tensor input) => F.Fold(input, outputSize, kernelSize, dilation, padding, stride);
}
