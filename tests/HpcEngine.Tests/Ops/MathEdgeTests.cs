namespace HpcEngine.Tests.Ops;

/// <summary>The math functions at PyTorch's edges: rounding halves to even, rounding an integer tensor leaves it an
/// integer tensor, the rounding functions' gradient is 0 and frac's is 1, asin's gradient at ±1 is infinite, and the
/// functions keep NaN and the infinities where PyTorch does.</summary>
public class MathEdgeTests
{
    [Test]
    public void Round_takes_halves_to_even_as_torch_round()
    {
        using var x = Tensor.FromArray(new[] { 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 0.0 }, [8]);
        using var r = x.Round();
        Assert.That(r.ToArray<double>(), Is.EqualTo(new[] { 0.0, 2, 2, -0.0, -2, -2, 2, 0 }));
        using var xf = Tensor.FromArray(new[] { 0.5f, 1.5f, -2.5f }, [3]);
        using var rf = xf.Round();
        Assert.That(rf.ToArray<float>(), Is.EqualTo(new[] { 0f, 2f, -2f }));
    }

    [Test]
    public void Floor_ceil_trunc_and_frac_follow_the_sign_conventions()
    {
        using var x = Tensor.FromArray(new[] { -1.7, -0.2, 0.2, 1.7 }, [4]);
        using (var t = x.Floor())
            Assert.That(t.ToArray<double>(), Is.EqualTo(new[] { -2.0, -1, 0, 1 }));
        using (var t = x.Ceil())
            Assert.That(t.ToArray<double>(), Is.EqualTo(new[] { -1.0, -0.0, 1, 2 }));
        using (var t = x.Trunc())
            Assert.That(t.ToArray<double>(), Is.EqualTo(new[] { -1.0, -0.0, 0, 1 }));
        using (var t = x.Frac())
            Assert.That(t.ToArray<double>(), Is.EqualTo(new[] { -0.7, -0.2, 0.2, 0.7 }).Within(1e-12));
    }

    [Test]
    public void Rounding_an_integer_tensor_leaves_it_an_integer_tensor()
    {
        using var x = Tensor.FromArray(new long[] { -3, 0, 7 }, [3]);
        foreach (
            var f in new Func<Tensor, Tensor>[]
            {
                HpcEngine.Ops.Floor,
                HpcEngine.Ops.Ceil,
                HpcEngine.Ops.Round,
                HpcEngine.Ops.Trunc,
            }
        )
        {
            using var r = f(x);
            Assert.That(r.DType, Is.EqualTo(DType.Int64));
            Assert.That(r.ToArray<long>(), Is.EqualTo(new long[] { -3, 0, 7 }));
        }
        using var s = x.Sin();
        Assert.That(s.DType, Is.EqualTo(DType.Float32), "the other functions promote integers to float32");
    }

    [Test]
    public void Rounding_has_gradient_zero_frac_one_and_asin_is_infinite_at_one()
    {
        foreach (
            var (f, expected) in new (Func<Tensor, Tensor>, double)[]
            {
                (t => t.Floor(), 0),
                (t => t.Ceil(), 0),
                (t => t.Round(), 0),
                (t => t.Trunc(), 0),
                (t => t.Frac(), 1),
            }
        )
        {
            using var x = Tensor.FromArray(new[] { -1.5, 0.3, 2.0 }, [3]);
            x.RequiresGrad = true;
            using (var y = f(x))
            using (var s = y.Sum())
                s.Backward();
            Assert.That(x.Grad!.ToArray<double>(), Is.All.EqualTo(expected));
        }
        using var one = Tensor.FromArray(new[] { 1.0, -1.0 }, [2]);
        one.RequiresGrad = true;
        using (var y = one.Asin())
        using (var s = y.Sum())
            s.Backward();
        Assert.That(one.Grad!.ToArray<double>(), Is.All.EqualTo(double.PositiveInfinity));
    }

    [Test]
    public void Nan_and_the_infinities_pass_as_in_pytorch()
    {
        using var x = Tensor.FromArray(new[] { double.NaN, double.PositiveInfinity, double.NegativeInfinity }, [3]);
        using (var t = x.Erf())
            Assert.That(t.ToArray<double>(), Is.EqualTo(new[] { double.NaN, 1, -1 }));
        using (var t = x.Atan())
            Assert.That(t.ToArray<double>(), Is.EqualTo(new[] { double.NaN, Math.PI / 2, -Math.PI / 2 }).Within(1e-15));
        using (var t = x.Floor())
            Assert.That(
                t.ToArray<double>(),
                Is.EqualTo(new[] { double.NaN, double.PositiveInfinity, double.NegativeInfinity })
            );
        using (var t = x.Expm1())
            Assert.That(t.ToArray<double>(), Is.EqualTo(new[] { double.NaN, double.PositiveInfinity, -1 }));
        using var outside = Tensor.FromArray(new[] { 1.5 }, [1]);
        using var a = outside.Asin();
        Assert.That(double.IsNaN(a.ToArray<double>()[0]), Is.True);
    }

    [Test]
    public void Atan2_reads_signed_zeros_and_remainder_takes_the_divisors_sign()
    {
        using var y = Tensor.FromArray(new[] { 0.0, -0.0, 1, -1 }, [4]);
        using var x = Tensor.FromArray(new[] { -0.0, -0.0, 0, -1 }, [4]);
        using var angle = HpcEngine.Ops.Atan2(y, x);
        Assert.That(
            angle.ToArray<double>(),
            Is.EqualTo(new[] { Math.PI, -Math.PI, Math.PI / 2, -3 * Math.PI / 4 }).Within(1e-15)
        );
        using var a = Tensor.FromArray(new[] { -7.5, 7.5 }, [2]);
        using var rem = HpcEngine.Ops.Remainder(a, 2);
        Assert.That(rem.ToArray<double>(), Is.EqualTo(new[] { 0.5, 1.5 }));
        using var mod = HpcEngine.Ops.Fmod(a, 2);
        Assert.That(mod.ToArray<double>(), Is.EqualTo(new[] { -1.5, 1.5 }));
        using var ints = Tensor.FromArray(new long[] { -7, 7 }, [2]);
        using var irem = HpcEngine.Ops.Remainder(ints, -3);
        Assert.That(irem.DType, Is.EqualTo(DType.Int64));
        Assert.That(irem.ToArray<long>(), Is.EqualTo(new long[] { -1, -2 }));
        using var zero = Tensor.FromArray(new long[] { 0, 1 }, [2]);
        Assert.That(
            Assert.Throws<DivideByZeroException>(() => HpcEngine.Ops.Fmod(ints, zero))!.Message,
            Does.Contain("integer division by zero")
        );
    }

    [Test]
    public void Erfinv_inverts_erf_and_is_infinite_at_the_ends()
    {
        using var x = Tensor.FromArray(new[] { -1.0, 1, 1.5, 0 }, [4]);
        using var r = HpcEngine.Ops.Erfinv(x);
        var v = r.ToArray<double>();
        Assert.That(v[0], Is.EqualTo(double.NegativeInfinity));
        Assert.That(v[1], Is.EqualTo(double.PositiveInfinity));
        Assert.That(v[2], Is.NaN);
        Assert.That(v[3], Is.EqualTo(0.0));
        using var p = Tensor.FromArray(new[] { -2.5, -0.3, 0.01, 1.2, 3.0 }, [5]);
        using var e = p.Erf();
        using var back = HpcEngine.Ops.Erfinv(e);
        Assert.That(back.ToArray<double>(), Is.EqualTo(p.ToArray<double>()).Within(1e-9));
    }
}
