namespace HpcEngine.Tests.Ops;

/// <summary>Training-mode batch norm against its definition computed here in float64: per channel the mean and the
/// biased variance over N·H·W, then (x − μ)/√(σ² + ε)·w + b. Planes of 35 values take the vectorised loops and their
/// tails; values near 1000 with a spread of 1 are where a one-pass Σx² − (Σx)² variance loses every digit in
/// float32, so they check that the variance is still taken about the mean.</summary>
public class BatchNormStatsTests
{
    [TestCase(DType.Float32, 0.0)]
    [TestCase(DType.Float32, 1000.0)]
    [TestCase(DType.Float64, 1000.0)]
    public void Training_output_is_the_normalised_input(DType dtype, double offset)
    {
        using var scope = new TensorScope();
        int n = 3,
            c = 2,
            l = 35;
        var raw = Tensor.Randn([n, c, 5, 7], DType.Float64, new Generator(5)).ToArray<double>();
        var xs = raw.Select(v => v + offset).ToArray();
        var x = Tensor.FromArray(xs, [n, c, 5, 7]).To(dtype);
        var w = Tensor.FromArray(new[] { 1.5, -0.5 }, [2]).To(dtype);
        var b = Tensor.FromArray(new[] { 0.25, 2.0 }, [2]).To(dtype);
        var y = F.BatchNorm(x, null, null, w, b).ToArray<double>();
        double tol = dtype == DType.Float32 ? 2e-3 : 1e-9;
        for (int ch = 0; ch < c; ch++)
        {
            var vals = Enumerable
                .Range(0, n)
                .SelectMany(i => Enumerable.Range(0, l).Select(j => xs[(i * c + ch) * l + j]))
                .ToArray();
            double mu = vals.Average(),
                var = vals.Select(v => (v - mu) * (v - mu)).Average();
            double[] wv = [1.5, -0.5],
                bv = [0.25, 2.0];
            for (int i = 0; i < n; i++)
            for (int j = 0; j < l; j++)
            {
                int at = (i * c + ch) * l + j;
                double want = (xs[at] - mu) / Math.Sqrt(var + 1e-5) * wv[ch] + bv[ch];
                Assert.That(y[at], Is.EqualTo(want).Within(tol), $"channel {ch}, image {i}, value {j}");
            }
        }
    }
}
