namespace HpcEngine.Tests.Ops;

using Ops = HpcEngine.Ops;

/// <summary>PyTorch's conventions at the edges of the scans and sorts (each value below is what PyTorch 1.13 prints
/// for the same call): where NaN goes, which index ties and NaN get, the gradient of a product at its zeros, integer
/// result dtypes, empty and 0-dim inputs; and the bad arguments each refuses with the reason.</summary>
public class ScanSortEdgeTests
{
    private static readonly float NaN = float.NaN;

    [Test]
    public void Running_max_and_min_let_a_nan_stick_and_move_the_index_on_ties()
    {
        using var x = Tensor.FromArray([1f, 3, 3, 2, NaN, 5, NaN, 0]);
        var (max, maxAt) = Ops.CumMax(x, 0);
        Assert.That(max.ToArray<float>(), Is.EqualTo(new[] { 1f, 3, 3, 3, NaN, NaN, NaN, NaN }));
        Assert.That(maxAt.ToArray<long>(), Is.EqualTo(new long[] { 0, 1, 2, 2, 4, 4, 6, 6 }));
        var (_, minAt) = Ops.CumMin(x, 0);
        Assert.That(minAt.ToArray<long>(), Is.EqualTo(new long[] { 0, 0, 0, 0, 4, 4, 6, 6 }));
    }

    [Test]
    public void Sort_puts_nan_last_ascending_and_first_descending_and_keeps_equal_values_in_order()
    {
        using var x = Tensor.FromArray([1f, 3, 3, 2, NaN, 5, NaN, 0]);
        var (up, upAt) = Ops.Sort(x);
        Assert.That(up.ToArray<float>(), Is.EqualTo(new[] { 0f, 1, 2, 3, 3, 5, NaN, NaN }));
        Assert.That(upAt.ToArray<long>(), Is.EqualTo(new long[] { 7, 0, 3, 1, 2, 5, 4, 6 }));
        var (_, downAt) = Ops.Sort(x, descending: true);
        Assert.That(downAt.ToArray<long>(), Is.EqualTo(new long[] { 4, 6, 5, 1, 2, 3, 0, 7 }));
        using var withNan = Tensor.FromArray([1f, NaN, 3]);
        var (top, topAt) = Ops.TopK(withNan, 2);
        Assert.That(top.ToArray<float>(), Is.EqualTo(new[] { NaN, 3f }));
        Assert.That(topAt.ToArray<long>(), Is.EqualTo(new long[] { 1, 2 }));
        Assert.That(Ops.KthValue(withNan, 3).Values.ToArray<float>(), Is.EqualTo(new[] { NaN }));
    }

    [Test]
    public void Median_is_nan_at_the_first_nan_and_nanmedian_skips_them()
    {
        using var x = Tensor.FromArray([1f, NaN, 3, NaN]);
        var (m, at) = Ops.Median(x, 0);
        Assert.That(m.ToArray<float>(), Is.EqualTo(new[] { NaN }));
        Assert.That(at.ToArray<long>(), Is.EqualTo(new long[] { 1 }));
        Assert.That(Ops.NanMedian(x, 0).Values.ToArray<float>(), Is.EqualTo(new[] { 1f }));
        using var allNan = Tensor.FromArray([NaN, NaN]);
        Assert.That(Ops.NanMedian(allNan).ToArray<float>(), Is.EqualTo(new[] { NaN }));
        using var even = Tensor.FromArray([4f, 1, 3, 2]);
        Assert.That(Ops.Median(even).ToArray<float>(), Is.EqualTo(new[] { 2f }), "the lower of the two middle values");
    }

    [Test]
    public void The_median_of_everything_shares_its_gradient_among_equal_elements()
    {
        using var x = Tensor.FromArray([1.0, 2, 2, 2, 3]).RequiresGrad_();
        Ops.Median(x).Backward();
        Assert.That(x.Grad!.ToArray<double>(), Is.EqualTo(new[] { 0, 1 / 3.0, 1 / 3.0, 1 / 3.0, 0 }).Within(1e-15));
    }

    [Test]
    public void Cumprod_and_prod_differentiate_exactly_through_zeros()
    {
        using var x = Tensor.FromArray([2.0, 0, 3, 1, 4]).RequiresGrad_();
        Ops.Sum(Ops.CumProd(x, 0)).Backward();
        Assert.That(x.Grad!.ToArray<double>(), Is.EqualTo(new[] { 1.0, 38, 0, 0, 0 }));
        using var y = Tensor.FromArray([2.0, 0, 3, 1, 4]).RequiresGrad_();
        Ops.Prod(y).Backward();
        Assert.That(y.Grad!.ToArray<double>(), Is.EqualTo(new[] { 0.0, 24, 0, 0, 0 }));
        using var twoZeros = Tensor.FromArray([2.0, 0, 3, 0, 4]).RequiresGrad_();
        Ops.Sum(Ops.CumProd(twoZeros, 0)).Backward();
        Assert.That(twoZeros.Grad!.ToArray<double>(), Is.EqualTo(new[] { 1.0, 8, 0, 0, 0 }));
    }

    [Test]
    public void Integers_scan_in_int64_keep_their_dtype_through_max_and_sort_exactly()
    {
        using var x = Tensor.FromArray([1, 3, 2]);
        using var sum = Ops.CumSum(x, 0);
        Assert.That(sum.DType, Is.EqualTo(DType.Int64));
        Assert.That(sum.ToArray<long>(), Is.EqualTo(new long[] { 1, 4, 6 }));
        var (max, at) = Ops.CumMax(x, 0);
        Assert.That(max.DType, Is.EqualTo(DType.Int32));
        Assert.That(at.ToArray<long>(), Is.EqualTo(new long[] { 0, 1, 1 }));
        using var big = Tensor.FromArray([(1L << 60) + 1, 1L << 60, -5]);
        Assert.That(Ops.Sort(big).Values.ToArray<long>(), Is.EqualTo(new[] { -5, 1L << 60, (1L << 60) + 1 }));
        Assert.That(Ops.Prod(x).DType, Is.EqualTo(DType.Int64));
        using var many = Tensor.FromArray(Enumerable.Repeat(1L << 20, 3).ToArray());
        Assert.That(Ops.Prod(many).ToArray<long>(), Is.EqualTo(new[] { 1L << 60 }), "exact past 2^53");
    }

    [Test]
    public void Logcumsumexp_of_infinities_and_empty_and_zero_dim_inputs()
    {
        using var inf = Tensor.FromArray([float.NegativeInfinity, float.NegativeInfinity, 1]);
        Assert.That(
            Ops.LogCumSumExp(inf, 0).ToArray<float>(),
            Is.EqualTo(new[] { float.NegativeInfinity, float.NegativeInfinity, 1 })
        );
        using var up = Tensor.FromArray([float.NegativeInfinity, float.PositiveInfinity, 1]);
        Assert.That(
            Ops.LogCumSumExp(up, 0).ToArray<float>(),
            Is.EqualTo(new[] { float.NegativeInfinity, float.PositiveInfinity, float.PositiveInfinity })
        );
        using var empty = Tensor.Zeros([2, 0]);
        Assert.That(Ops.CumSum(empty, 1).ShapeArray, Is.EqualTo(new[] { 2, 0 }));
        Assert.That(Ops.Sort(empty, 1).Values.ShapeArray, Is.EqualTo(new[] { 2, 0 }));
        Assert.That(Ops.Prod(empty, 1).ToArray<float>(), Is.EqualTo(new[] { 1f, 1 }), "the empty product is 1");
        Assert.That(Ops.Nonzero(empty).ShapeArray, Is.EqualTo(new[] { 0, 2 }));
        using var scalar = Tensor.Scalar(3);
        Assert.That(Ops.CumSum(scalar, 0).ToArray<float>(), Is.EqualTo(new[] { 3f }));
        Assert.That(Ops.Sort(scalar).Indices.ToArray<long>(), Is.EqualTo(new long[] { 0 }));
    }

    [Test]
    public void Unique_counts_every_nan_once_where_pytorch_1_13_says_zero()
    {
        // PyTorch 1.13 returns values [1, nan, nan] with counts [2, 0, 0]: NaNs are distinct values, so each occurs
        // once; we report 1.
        using var x = Tensor.FromArray([NaN, 1f, NaN, 1]);
        var (values, inverse, counts) = Ops.Unique(x, returnInverse: true, returnCounts: true);
        Assert.That(values.ToArray<float>(), Is.EqualTo(new[] { 1f, NaN, NaN }));
        Assert.That(counts!.ToArray<long>(), Is.EqualTo(new long[] { 2, 1, 1 }));
        Assert.That(inverse!.ToArray<long>(), Is.EqualTo(new long[] { 1, 0, 2, 0 }));
    }

    [Test]
    public void Bad_arguments_are_refused_naming_the_problem()
    {
        using var x = Tensor.Zeros([3, 4]);
        Assert.That(
            Assert.Throws<ArgumentOutOfRangeException>(() => Ops.TopK(x, 5))!.Message,
            Does.Contain("k = 5 is outside [0, 4]")
        );
        Assert.That(
            Assert.Throws<ArgumentOutOfRangeException>(() => Ops.KthValue(x, 0, 0))!.Message,
            Does.Contain("k = 0 is outside [1, 3]")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => Ops.Diagonal(x, 0, 1, -1))!.Message,
            Does.Contain("dim1 and dim2 are both 1")
        );
        using var notBool = Tensor.Ones([4]);
        Assert.That(
            Assert.Throws<DTypeMismatchException>(() => Ops.MaskedSelect(x, notBool))!.Message,
            Does.Contain("the mask must be bool")
        );
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => Ops.RepeatInterleave(x, [1, 2], 0))!.Message,
            Does.Contain("2 repeat counts for 3 elements")
        );
        using var idx = Tensor.FromArray([0L, 4], 1, 2);
        Assert.That(
            Assert.Throws<IndexOutOfRangeException>(() => Ops.Scatter(x, 1, idx, 1.0))!.Message,
            Does.Contain("index 4").And.Contain("size 4")
        );
        using var flat = Tensor.FromArray([0L]);
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => Ops.Scatter(x, 1, flat, 1.0))!.Message,
            Does.Contain("must have the same rank")
        );
        using var ints = Tensor.FromArray([1, 2]);
        Assert.That(
            Assert.Throws<DTypeMismatchException>(() => Ops.LogCumSumExp(ints, 0))!.Message,
            Does.Contain("needs a floating-point input")
        );
        using var source = Tensor.Zeros([3, 2]);
        using var two = Tensor.FromArray([0L, 1, 2]);
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => Ops.IndexAdd(x, 1, two, source))!.Message,
            Does.Contain("one slice per index")
        );
    }

    [Test]
    public void Weighted_and_soft_cross_entropy_refuse_mismatched_shapes()
    {
        using var logits = Tensor.Zeros([2, 3]);
        using var target = Tensor.FromArray([0L, 2]);
        using var weight = Tensor.Ones([4]);
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => F.CrossEntropy(logits, target, weight))!.Message,
            Does.Contain("one entry per class ([3])")
        );
        using var probs = Tensor.Ones([2, 4]);
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => F.SoftCrossEntropy(logits, probs))!.Message,
            Does.Contain("of the logits' shape [2, 3]")
        );
    }

    [Test]
    public void Matrix_norms_needing_singular_values_and_bad_prelu_weights_are_refused()
    {
        using var m = Tensor.Zeros([3, 3]);
        Assert.That(
            Assert.Throws<ArgumentException>(() => Ops.MatrixNorm(m, "nuc"))!.Message,
            Does.Contain("needs singular values")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => Ops.MatrixNorm(m, "7"))!.Message,
            Does.Contain("is not one of fro")
        );
        using var x = Tensor.Zeros([2, 4, 5]);
        using var w = Tensor.Ones([3]);
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => F.Prelu(x, w))!.Message,
            Does.Contain("one per channel ([4])")
        );
        var prelu = new HpcEngine.NN.PReLU(4);
        Assert.That(prelu.StateDict().Select(kv => kv.Key), Is.EquivalentTo(new[] { "weight" }));
        Assert.That(prelu.Weight.ToArray<float>(), Is.EqualTo(new[] { 0.25f, 0.25f, 0.25f, 0.25f }));
        using var zeroDist = Tensor.FromArray(new[] { 1.0, 2 }, 1, 2).RequiresGrad_();
        using var same = Tensor.FromArray(new[] { 1.0, 2 }, 1, 2);
        Ops.Sum(Ops.Cdist(zeroDist, same)).Backward();
        Assert.That(
            zeroDist.Grad!.ToArray<double>(),
            Is.EqualTo(new[] { 0.0, 0 }),
            "zero distance: gradient 0, not NaN"
        );
    }

    [Test]
    public void Einsum_refuses_equations_that_do_not_fit_their_operands()
    {
        using var a = Tensor.Zeros([2, 3]);
        using var b = Tensor.Zeros([4, 5]);
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => Ops.Einsum("ij,jk->ik", a, b))!.Message,
            Does.Contain("letter 'j' is 3 in one place and 4 in operand 1")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => Ops.Einsum("ij->ik", a))!.Message,
            Does.Contain("output letter 'k' is in no operand")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => Ops.Einsum("ij,jk->ik", a))!.Message,
            Does.Contain("2 operand spec(s) for 1 tensor(s)")
        );
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => Ops.Einsum("ijk->i", a))!.Message,
            Does.Contain("names 3 dims but its shape is [2, 3]")
        );
        Assert.That(
            Assert.Throws<ArgumentException>(() => Ops.Einsum("...i...->i", a))!.Message,
            Does.Contain("more than one ellipsis")
        );
        using var c = Tensor.Zeros([3, 2, 3]);
        Assert.That(
            Assert.Throws<ShapeMismatchException>(() => Ops.Einsum("...j,...j->...", c, b))!.Message,
            Does.Contain("do not broadcast")
        );
        using var x = Tensor.FromArray([1f, 2, 3, 4, 5, 6], 2, 3);
        using var summed = Ops.Einsum("...j->j", x);
        Assert.That(summed.ToArray<float>(), Is.EqualTo(new[] { 5f, 7, 9 }), "the ellipsis' dims are summed away");
    }
}
