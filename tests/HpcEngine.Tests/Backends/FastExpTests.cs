using HpcEngine.Backends.Cpu;

namespace HpcEngine.Tests.Backends;

[TestFixture]
public unsafe class FastExpTests
{
    [Test]
    public void Is_within_a_few_ulp_of_exp_over_the_whole_range()
    {
        // 10007 values (not a multiple of the vector width, so the scalar tail runs too) from -87 to 88.
        int n = 10007;
        var x = new float[n];
        for (int i = 0; i < n; i++)
            x[i] = -87f + 175f * i / (n - 1);
        var y = new float[n];
        fixed (
            float* px = x,
                py = y
        )
            FastExp.ExpShiftedSum(px, py, n, 0f);
        for (int i = 0; i < n; i++)
        {
            double want = Math.Exp(x[i]);
            Assert.That(Math.Abs(y[i] - want), Is.LessThanOrEqualTo(3e-7 * want), $"exp({x[i]})");
        }
    }

    [Test]
    public void Returns_the_sum_and_hard_zeros_for_minus_infinity()
    {
        var x = new[] { 0f, float.NegativeInfinity, 1f, -200f, 0.5f, 2f, -1f, 3f, float.NegativeInfinity };
        var y = new float[x.Length];
        float sum;
        fixed (
            float* px = x,
                py = y
        )
            sum = FastExp.ExpShiftedSum(px, py, x.Length, 1f);
        Assert.That(y[1], Is.Zero);
        Assert.That(y[3], Is.Zero);
        Assert.That(y[8], Is.Zero);
        Assert.That(sum, Is.EqualTo(y.Sum()).Within(1e-6));
        Assert.That(y[2], Is.EqualTo(1f).Within(1e-7));
    }

    [Test]
    public void Float32_softmax_keeps_masked_positions_at_zero_and_propagates_nan()
    {
        using var s = Tensor.FromArray(
            [0f, float.NegativeInfinity, 1f, float.NegativeInfinity, 2f, 0f, 0f, 0f, 1f],
            1,
            9
        );
        var p = F.Softmax(s, -1).ToArray<float>();
        Assert.That(p[1], Is.Zero);
        Assert.That(p[3], Is.Zero);
        Assert.That(p.Sum(), Is.EqualTo(1f).Within(1e-6));
        using var bad = Tensor.FromArray([0f, float.NaN, 1f], 1, 3);
        Assert.That(F.Softmax(bad, -1).ToArray<float>(), Is.All.NaN);
    }
}
