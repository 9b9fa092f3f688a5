using HpcEngine.Compression;

namespace HpcEngine.Tests.Compression;

[TestFixture]
public class CodecTests
{
    private static float[] Gradient(int n, ulong seed = 1) =>
        Tensor.Randn([n], DType.Float32, new Generator(seed)).ToArray<float>();

    private static MessageCodec Codec(string spec, ulong seed = 0) => (MessageCodec)GradientCodec.Create(spec, seed);

    private static float[] RoundTrip(MessageCodec c, float[] g, int key = 0)
    {
        var msg = c.Encode(g, key);
        var back = new float[g.Length];
        c.Decode(msg, back);
        return back;
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(1001)]
    public void None_is_exact_and_four_bytes_per_element(int n)
    {
        var c = Codec("none");
        var g = Gradient(n);
        Assert.That(RoundTrip(c, g), Is.EqualTo(g));
        Assert.That(c.Encode(g).WireBytes, Is.EqualTo(4 * n));
    }

    [TestCase("fp16", 1e-3)]
    [TestCase("bf16", 8e-3)]
    public void Half_precision_round_trips_within_its_rounding(string name, double rel)
    {
        var c = Codec(name);
        var g = Gradient(4099);
        var back = RoundTrip(c, g);
        for (int i = 0; i < g.Length; i++)
            Assert.That(back[i], Is.EqualTo(g[i]).Within(rel * Math.Abs(g[i]) + 1e-7), $"{name} element {i}");
        Assert.That(c.Encode(g).WireBytes, Is.EqualTo(2 * 4099));
    }

    [Test]
    public void Top_k_keeps_exactly_the_k_largest_magnitudes()
    {
        var c = Codec("topk:0.01");
        var g = Gradient(1000);
        var msg = c.Encode(g);
        Assert.That(
            msg.WireBytes,
            Is.EqualTo(4 + 8 * 10),
            "k = ceil(0.01 · 1000) = 10 (index, value) pairs after a count"
        );
        var back = new float[g.Length];
        c.Decode(msg, back);
        var kept = Enumerable.Range(0, g.Length).Where(i => back[i] != 0).ToArray();
        var largest = Enumerable.Range(0, g.Length).OrderByDescending(i => Math.Abs(g[i])).Take(10).Order().ToArray();
        Assert.That(kept, Is.EqualTo(largest));
        foreach (int i in kept)
            Assert.That(back[i], Is.EqualTo(g[i]));
    }

    [Test]
    public void Top_k_warm_up_starts_at_a_quarter_and_reaches_the_fraction_after_its_steps()
    {
        var c = (TopKCodec)Codec("topk:0.01:4");
        Assert.That(c.Name, Is.EqualTo("topk:0.01:4"));
        // 25 % → 1 % geometrically over 4 steps: 25, 11.18, 5, 2.236, then 1 % for good.
        double[] share = [0.25, 0.25 * Math.Pow(0.04, 0.25), 0.05, 0.25 * Math.Pow(0.04, 0.75), 0.01, 0.01];
        var g = Gradient(1000);
        for (int step = 0; step < share.Length; step++)
        {
            Assert.That(c.FractionAt(step), Is.EqualTo(share[step]).Within(1e-12), $"step {step}");
            var msg = c.Encode(g, key: 1);
            Assert.That(
                msg.WireBytes,
                Is.EqualTo(4 + 8 * (int)Math.Ceiling(c.FractionAt(step) * 1000)),
                $"step {step}"
            );
        }
        Assert.That(c.Encode(g, key: 2).WireBytes, Is.EqualTo(4 + 8 * 250), "every bucket warms up on its own count");
        // The step counts are state: a restored codec goes on where the saved one was.
        var restored = (TopKCodec)Codec("topk:0.01:4");
        restored.LoadStateDict(c.StateDict());
        Assert.That(restored.Encode(g, key: 2).WireBytes, Is.EqualTo(4 + 8 * 112));
        Assert.Throws<ArgumentException>(() => Codec("topk:0.01:x"));
    }

    [TestCase("topk:0.05")]
    [TestCase("topk:0.05:3")]
    [TestCase("randomk:0.05")]
    [TestCase("sign")]
    public void Error_feedback_conserves_what_was_not_sent(string name)
    {
        // Over several steps: sum of decoded messages + final residual = sum of the gradients fed in.
        var c = Codec(name, seed: 3);
        Assert.That(c.ErrorFeedback, Is.True);
        int n = 503;
        var totalIn = new double[n];
        var totalOut = new double[n];
        for (int step = 0; step < 5; step++)
        {
            var g = Gradient(n, (ulong)step + 10);
            var back = RoundTrip(c, g, key: 7);
            for (int i = 0; i < n; i++)
            {
                totalIn[i] += g[i];
                totalOut[i] += back[i];
            }
        }
        var residual = c.StateDict()["residual.7"].ToArray<float>();
        for (int i = 0; i < n; i++)
            Assert.That(totalOut[i] + residual[i], Is.EqualTo(totalIn[i]).Within(1e-4), $"element {i}");
        Assert.That(c.ResidualNorm(7), Is.GreaterThan(0));
        Assert.That(c.ResidualNorm(8), Is.Zero, "residuals are per bucket");
    }

    [Test]
    public void Random_k_draws_k_distinct_indices_and_changes_them_each_step()
    {
        var c = Codec("randomk:0.1", seed: 5);
        var g = Gradient(200);
        var a = RoundTrip(c, g);
        Assert.That(a.Count(v => v != 0), Is.EqualTo(20));
        var b = RoundTrip(c, g);
        var ia = Enumerable.Range(0, 200).Where(i => a[i] != 0);
        var ib = Enumerable.Range(0, 200).Where(i => b[i] != 0);
        Assert.That(ib, Is.Not.EqualTo(ia));
    }

    [Test]
    public void Int8_is_unbiased_and_bounded_by_one_level()
    {
        var c = Codec("int8", seed: 9);
        var g = Gradient(257);
        float scale = g.Max(Math.Abs);
        Assert.That(c.Encode(g).WireBytes, Is.EqualTo(4 + 257));
        var mean = new double[g.Length];
        const int trials = 400;
        for (int t = 0; t < trials; t++)
        {
            var back = RoundTrip(c, g);
            for (int i = 0; i < g.Length; i++)
            {
                Assert.That(
                    Math.Abs(back[i] - g[i]),
                    Is.LessThanOrEqualTo(scale / 127 + 1e-6),
                    "within one quantisation level"
                );
                mean[i] += back[i] / trials;
            }
        }
        for (int i = 0; i < g.Length; i++)
            Assert.That(mean[i], Is.EqualTo(g[i]).Within(0.25 * scale / 127), $"unbiased at {i}");
    }

    [Test]
    public void Sign_sends_one_bit_per_element_and_the_mean_magnitude()
    {
        var c = Codec("sign");
        var g = Gradient(1000);
        var msg = c.Encode(g, key: 1);
        Assert.That(msg.WireBytes, Is.EqualTo(4 + 125));
        var back = new float[1000];
        c.Decode(msg, back);
        float scale = (float)g.Average(v => Math.Abs((double)v));
        for (int i = 0; i < g.Length; i++)
            Assert.That(back[i], Is.EqualTo(g[i] >= 0 ? scale : -scale).Within(1e-6));
    }

    [Test]
    public void Residual_state_survives_a_save_and_restore()
    {
        var a = Codec("topk:0.1");
        var b = Codec("topk:0.1");
        RoundTrip(a, Gradient(100, 1));
        b.LoadStateDict(a.StateDict());
        var g2 = Gradient(100, 2);
        Assert.That(RoundTrip(b, g2), Is.EqualTo(RoundTrip(a, g2)));
        Assert.Throws<InvalidOperationException>(() =>
            b.LoadStateDict(new Dictionary<string, Tensor> { ["bogus"] = Tensor.Zeros([1]) })
        );
    }

    [Test]
    public void Bad_names_and_corrupt_messages_are_clear_errors()
    {
        Assert.Throws<ArgumentException>(() => Codec("topk"));
        Assert.Throws<ArgumentException>(() => Codec("topk:2"));
        Assert.Throws<ArgumentException>(() => Codec("zip"));
        var c = Codec("topk:0.5");
        var msg = c.Encode(new float[] { 1, 2 });
        var bad = new EncodedGradient(msg.Bytes, 1); // claims a shorter gradient than the indices in it
        Assert.Throws<InvalidDataException>(() => c.Decode(bad, new float[2]));
    }
}
