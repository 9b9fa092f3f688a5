namespace HpcEngine.NN;

/// <summary>PyTorch's default initialisations, drawn from a <see cref="Generator"/> so a seed fixes a model.</summary>
public static class Init
{
    /// <summary>U(−1/√fanIn, 1/√fanIn): what kaiming_uniform_(a=√5) gives nn.Linear and nn.Conv2d weights, and the
    /// default bias init.</summary>
    public static Tensor UniformFanIn(int[] shape, int fanIn, Generator generator)
    {
        double bound = fanIn > 0 ? 1.0 / Math.Sqrt(fanIn) : 0;
        return Tensor.Rand(shape, DType.Float32, generator, -bound, bound);
    }

    /// <summary>N(0, std²).</summary>
    public static Tensor Normal(int[] shape, double std, Generator generator) =>
        Tensor.Randn(shape, DType.Float32, generator, 0, std);
}
