namespace HpcEngine.Tests.Ops;

/// <summary>The composed activations and losses at the edges PyTorch's own kernels handle: large inputs give finite
/// values and gradients (the exponential is taken of the clamped branch only), and shapes are checked.</summary>
public class ActivationEdgeTests
{
    [Test]
    public void Large_inputs_give_finite_values_and_gradients()
    {
        using var scope = new TensorScope();
        var ops = new (string Name, Func<Tensor, Tensor> Op)[]
        {
            ("elu", x => F.Elu(x)),
            ("selu", F.Selu),
            ("celu", x => F.Celu(x, 0.5)),
            ("softplus", x => F.Softplus(x)),
            ("mish", F.Mish),
            ("logsigmoid", F.LogSigmoid),
            ("bce_with_logits", x => F.BinaryCrossEntropyWithLogits(x, Tensor.FromArray(new[] { 1.0, 0, 1, 0 }))),
        };
        foreach (var (name, op) in ops)
        {
            var x = Tensor.FromArray(new[] { 1000.0, -1000.0, 80.0, -80.0 }).RequiresGrad_();
            var y = op(x);
            Assert.That(y.ToArray<double>(), Is.All.Not.NaN.And.All.Not.EqualTo(double.PositiveInfinity), name);
            y.Sum().Backward();
            Assert.That(x.Grad!.ToArray<double>(), Is.All.Not.NaN, $"{name} gradient");
        }
    }

    [Test]
    public void Softplus_is_the_identity_above_its_threshold_and_logsigmoid_is_exact_far_out()
    {
        using var scope = new TensorScope();
        using var x = Tensor.FromArray(new[] { 30.0, -30.0 });
        Assert.That(F.Softplus(x).ToArray<double>()[0], Is.EqualTo(30.0));
        Assert.That(F.LogSigmoid(x).ToArray<double>()[1], Is.EqualTo(-30.0).Within(1e-12));
    }

    [Test]
    public void Mismatched_shapes_and_an_odd_glu_dimension_are_refused_naming_the_op()
    {
        using var a = Tensor.Zeros([3, 4]);
        using var b = Tensor.Zeros([4, 3]);
        Assert.That(() => F.L1Loss(a, b), Throws.InstanceOf<ShapeMismatchException>().With.Message.Contains("l1_loss"));
        using var odd = Tensor.Zeros([2, 5]);
        Assert.That(() => F.Glu(odd), Throws.InstanceOf<ShapeMismatchException>().With.Message.Contains("glu"));
    }
}
