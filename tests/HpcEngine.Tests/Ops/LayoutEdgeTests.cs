namespace HpcEngine.Tests.Ops;

using Ops = HpcEngine.Ops;

/// <summary>The layout and normalisation composites refuse what PyTorch refuses, with the reason, and keep its edge
/// conventions: addmm with β = 0 does not read its input, a roll by the size is the identity, flip over no dims is a
/// copy.</summary>
public class LayoutEdgeTests
{
    [Test]
    public void Bad_arguments_are_refused_naming_the_problem()
    {
        using var m = Tensor.Zeros([2, 3]);
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => Ops.Repeat(m, 2))!.Message,
            Does.Contain("1 repeat count(s) for a 2-d tensor")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => Ops.Roll(m, [1, 2], [0]))!.Message,
            Does.Contain("2 shift(s) for 1 dim(s)")
        );
        using var v = Tensor.Zeros([4]);
        Assert.That(Assert.Throws<ShapeMismatchException>(() => Ops.Tril(v))!.Message, Does.Contain("needs a matrix"));
        using var x = Tensor.Zeros([2, 6, 3]);
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => F.GroupNorm(x, 4))!.Message,
            Does.Contain("6 channels do not split into 4 groups")
        );
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => Ops.Outer(m, v))!.Message,
            Does.Contain("needs two vectors")
        );
    }

    [Test]
    public void Padding_and_resampling_refuse_what_pytorch_refuses()
    {
        using var x = Tensor.Zeros([1, 2, 3, 4]);
        Assert.That(
            Assert.Throws<ArgumentException>(() => F.Pad(x, [4, 0], "reflect"))!.Message,
            Does.Contain("must be below dim 3's size 4")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => F.Pad(x, [1, 2, 3], "constant"))!.Message,
            Does.Contain("(before, after) pairs")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => F.Pad(x, [1, 1], "wrap"))!.Message,
            Does.Contain("not one of constant, reflect, replicate, circular")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => F.Interpolate(x, size: [2, 2], scaleFactor: [2, 2]))!.Message,
            Does.Contain("either size or scale_factor")
        );
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => F.Interpolate(x, size: [5], mode: "linear"))!.Message,
            Does.Contain("linear needs 1 spatial dim(s)")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => F.Interpolate(x, size: [5, 5], alignCorners: true))!.Message,
            Does.Contain("align_corners applies to the linear modes only")
        );
    }

    [Test]
    public void Bilinear_upsampling_with_aligned_corners_keeps_the_corners_and_the_mean_of_a_ramp()
    {
        using var ramp = Tensor.FromArray(new[] { 0.0, 1, 2, 3 }, [1, 1, 2, 2]);
        using var up = F.Interpolate(ramp, size: [3, 3], mode: "bilinear", alignCorners: true);
        Assert.That(up.ToArray<double>(), Is.EqualTo(new[] { 0.0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3 }));
    }

    [Test]
    public void Addmm_with_beta_zero_does_not_read_its_input()
    {
        using var input = Tensor.FromArray(new[] { double.NaN, double.NaN }, [2]);
        using var a = Tensor.FromArray(new[] { 1.0, 2, 3, 4 }, [2, 2]);
        using var r = Ops.Addmm(input, a, a, beta: 0);
        Assert.That(r.ToArray<double>(), Is.EqualTo(new[] { 7.0, 10, 15, 22 }));
    }

    [Test]
    public void A_roll_by_the_size_is_the_identity_and_flip_over_no_dims_a_copy()
    {
        using var x = Tensor.FromArray(new[] { 1.0, 2, 3, 4, 5, 6 }, [2, 3]);
        using (var r = Ops.Roll(x, [3, -2], [1, 0]))
            Assert.That(r.ToArray<double>(), Is.EqualTo(x.ToArray<double>()));
        using (var r = Ops.Roll(x, [-1], [1]))
            Assert.That(r.ToArray<double>(), Is.EqualTo(new[] { 2.0, 3, 1, 5, 6, 4 }));
        using (var f = Ops.Flip(x))
            Assert.That(f.ToArray<double>(), Is.EqualTo(x.ToArray<double>()));
        using (var t = Ops.Repeat(x, 0, 1))
            Assert.That(t.ShapeArray, Is.EqualTo(new[] { 0, 3 }), "a zero count gives an empty dim");
    }

    [Test]
    public void Instance_norm_is_group_norm_with_a_group_per_channel()
    {
        using var x = Tensor.Randn([2, 3, 5], DType.Float64, new Generator(4));
        using var a = F.InstanceNorm(x);
        using var b = F.GroupNorm(x, 3);
        Assert.That(a.ToArray<double>(), Is.EqualTo(b.ToArray<double>()));
        using var mean = Ops.Mean(a, [2]);
        Assert.That(mean.ToArray<double>(), Is.All.EqualTo(0.0).Within(1e-12));
    }
}
