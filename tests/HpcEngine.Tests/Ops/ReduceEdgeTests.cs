namespace HpcEngine.Tests.Ops;

using Ops = HpcEngine.Ops;

/// <summary>The composite reductions and tests at PyTorch's edges: any / all / count_nonzero (all over an empty dim
/// is true), the NaN and infinity tests on floats and integers, nanmean of an all-NaN row, a vector norm's gradient
/// at the zero vector (0, not NaN), and hypot without overflow.</summary>
public class ReduceEdgeTests
{
    [Test]
    public void Any_all_and_count_nonzero_follow_pytorch()
    {
        using var x = Tensor.FromArray(new[] { 0.0, 2, 0, 0, -1, 3 }, [2, 3]);
        using (var t = Ops.CountNonzero(x, [1]))
        {
            Assert.That(t.DType, Is.EqualTo(DType.Int64));
            Assert.That(t.ToArray<long>(), Is.EqualTo(new long[] { 1, 2 }));
        }
        using (var t = Ops.Any(x, [0]))
            Assert.That(t.Bools(), Is.EqualTo(new[] { false, true, true }));
        using (var t = Ops.All(x, [0]))
            Assert.That(t.Bools(), Is.EqualTo(new[] { false, true, false }));
        using (var t = Ops.All(x, [1], keepDim: true))
            Assert.That(t.ShapeArray, Is.EqualTo(new[] { 2, 1 }));
        using var empty = Tensor.Zeros([2, 0]);
        using (var t = Ops.All(empty, [1]))
            Assert.That(t.Bools(), Is.EqualTo(new[] { true, true }), "all over nothing is true");
        using (var t = Ops.Any(empty, [1]))
            Assert.That(t.Bools(), Is.EqualTo(new[] { false, false }));
    }

    [Test]
    public void Nan_and_infinity_tests_on_floats_and_integers()
    {
        using var x = Tensor.FromArray(
            new[] { 1.0, double.NaN, double.PositiveInfinity, double.NegativeInfinity },
            [4]
        );
        using (var t = Ops.IsNan(x))
            Assert.That(t.Bools(), Is.EqualTo(new[] { false, true, false, false }));
        using (var t = Ops.IsInf(x))
            Assert.That(t.Bools(), Is.EqualTo(new[] { false, false, true, true }));
        using (var t = Ops.IsFinite(x))
            Assert.That(t.Bools(), Is.EqualTo(new[] { true, false, false, false }));
        using var i = Tensor.FromArray(new long[] { 3, -7 }, [2]);
        using (var t = Ops.IsNan(i))
            Assert.That(t.Bools(), Is.All.False);
        using (var t = Ops.IsFinite(i))
            Assert.That(t.Bools(), Is.All.True);
        using var f = Tensor.FromArray(new[] { float.PositiveInfinity, float.NaN }, [2]);
        using (var t = Ops.NanToNum(f))
            Assert.That(t.ToArray<float>(), Is.EqualTo(new[] { float.MaxValue, 0f }), "float32's largest finite value");
    }

    [Test]
    public void Nanmean_of_an_all_nan_row_is_nan_and_nansum_is_zero()
    {
        using var x = Tensor.FromArray(new[] { double.NaN, double.NaN, 1.0, double.NaN }, [2, 2]);
        using (var t = Ops.NanMean(x, [1]))
        {
            var v = t.ToArray<double>();
            Assert.That(double.IsNaN(v[0]), Is.True);
            Assert.That(v[1], Is.EqualTo(1.0));
        }
        using (var t = Ops.NanSum(x, [1]))
            Assert.That(t.ToArray<double>(), Is.EqualTo(new[] { 0.0, 1.0 }));
    }

    [TestCase(3.0)]
    [TestCase(0.5)]
    [TestCase(2.0)]
    [TestCase(double.PositiveInfinity)]
    public void A_vector_norms_gradient_at_the_zero_vector_is_zero_not_nan(double ord)
    {
        using var x = Tensor.Zeros([4], DType.Float64);
        x.RequiresGrad = true;
        using (var n = Ops.VectorNorm(x, ord))
        {
            Assert.That(n.ToArray<double>()[0], Is.EqualTo(0.0));
            n.Backward();
        }
        Assert.That(x.Grad!.ToArray<double>(), Is.All.EqualTo(0.0));
    }

    [Test]
    public void Vector_norm_orders_zero_and_negative_infinity()
    {
        using var x = Tensor.FromArray(new[] { 0.0, -3, 0.5, 0 }, [4]);
        using (var t = Ops.VectorNorm(x, 0))
            Assert.That(t.ToArray<double>()[0], Is.EqualTo(2.0), "the count of nonzeros");
        using (var t = Ops.VectorNorm(x, double.NegativeInfinity))
            Assert.That(t.ToArray<double>()[0], Is.EqualTo(0.0));
        using (var t = Ops.VectorNorm(x, -1))
            Assert.That(t.ToArray<double>()[0], Is.EqualTo(0.0), "a zero element makes a negative-order norm 0");
    }

    [Test]
    public void Hypot_neither_overflows_nor_loses_an_infinity()
    {
        using var a = Tensor.FromArray(new[] { 3e200, 0.0, double.PositiveInfinity, 3e-200 }, [4]);
        using var b = Tensor.FromArray(new[] { 4e200, 0.0, double.NaN, 4e-200 }, [4]);
        using var h = Ops.Hypot(a, b);
        var v = h.ToArray<double>();
        Assert.That(v[0], Is.EqualTo(5e200).Within(1e186));
        Assert.That(v[1], Is.EqualTo(0.0));
        Assert.That(v[2], Is.EqualTo(double.PositiveInfinity), "hypot(inf, nan) is inf, as C's");
        Assert.That(v[3], Is.EqualTo(5e-200).Within(1e-214));
    }

    [Test]
    public void Lerp_at_weight_one_gives_the_end_exactly()
    {
        using var a = Tensor.FromArray(new[] { 0.1, 1e20 }, [2]);
        using var b = Tensor.FromArray(new[] { 0.7, 3.0 }, [2]);
        using var r = Ops.Lerp(a, b, 1.0);
        Assert.That(r.ToArray<double>(), Is.EqualTo(new[] { 0.7, 3.0 }));
    }
}

internal static class BoolTensors
{
    /// <summary>A bool tensor's values (ToArray has no bool form).</summary>
    public static bool[] Bools(this Tensor t)
    {
        using var i = HpcEngine.Ops.To(t, DType.Int64);
        return i.ToArray<long>().Select(v => v != 0).ToArray();
    }
}
