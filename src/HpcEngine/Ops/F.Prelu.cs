namespace HpcEngine;

public static partial class F
{
    /// <summary>torch.nn.functional.prelu: x where x &gt; 0, else weight · x, the weight ([1], or one per channel along
    /// dim 1) learned; at 0 the gradient takes the negative side's slope, as PyTorch.</summary>
    public static Tensor Prelu(Tensor x, Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        int channels = x.Rank >= 2 ? x.Shape[1] : 1;
        if (weight.Rank != 1 || (weight.NumEl != 1 && weight.NumEl != channels))
            throw ShapeMismatchException.For(
                "prelu",
                $"weight must be [1] or one per channel ([{channels}])",
                x,
                weight
            );
        var shape = Enumerable.Repeat(1, Math.Max(x.Rank, 1)).ToArray();
        if (x.Rank >= 2)
            shape[1] = weight.NumEl;
        using var w = Ops.Reshape(weight, x.Rank == 0 ? [] : shape);
        using var zero = Tensor.Scalar(0, x.DType);
        using var positive = Ops.Gt(x, zero);
        using var scaled = Ops.Mul(x, w);
        return Ops.Where(positive, x, scaled);
    }
}
