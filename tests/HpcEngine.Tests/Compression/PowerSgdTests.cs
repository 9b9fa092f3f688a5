using HpcEngine.Compression;
using HpcEngine.Tests.Distributed;

namespace HpcEngine.Tests.Compression;

[TestFixture]
public class PowerSgdTests
{
    /// <summary>u vᵀ for seeded u [rows] and v [cols], laid out row-major.</summary>
    private static float[] RankOne(int rows, int cols, ulong seed)
    {
        var u = Tensor.Randn([rows], DType.Float32, new Generator(seed)).ToArray<float>();
        var v = Tensor.Randn([cols], DType.Float32, new Generator(seed + 1)).ToArray<float>();
        var m = new float[rows * cols];
        for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            m[i * cols + j] = u[i] * v[j];
        return m;
    }

    [Test]
    public void A_rank_r_matrix_comes_through_exactly_and_vectors_are_sent_as_they_are()
    {
        Ranks.Run(1, pg =>
        {
            var codec = new PowerSgdCodec(1, seed: 3);
            var values = RankOne(8, 6, 10).Concat(new float[] { 1.5f, -2, 0.25f }).ToArray();
            using var flat = Tensor.FromArray((float[])values.Clone());
            var x = codec.Exchange(
                flat,
                [
                    [8, 6],
                    [3],
                ],
                pg,
                key: 0
            );
            x.Work.Wait();
            Assert.That(flat.ToArray<float>(), Is.EqualTo(values).Within(1e-5));
            Assert.That(codec.ResidualNorm(0), Is.LessThan(1e-4));
            Assert.That(x.EncodedBytes, Is.EqualTo(4 * (1 * (8 + 6) + 3)), "P and Q of the matrix, the vector as is");
        });
    }

    [Test]
    public void Error_feedback_conserves_what_the_approximation_missed()
    {
        Ranks.Run(1, pg =>
        {
            var codec = new PowerSgdCodec(1, seed: 4);
            var residual = new float[12 * 10];
            for (int step = 0; step < 3; step++)
            {
                var g = Tensor.Randn([12 * 10], DType.Float32, new Generator(20 + (ulong)step)).ToArray<float>();
                using var flat = Tensor.FromArray((float[])g.Clone());
                codec
                    .Exchange(
                        flat,
                        [
                            [12, 10],
                        ],
                        pg,
                        key: 5
                    )
                    .Work.Wait();
                var sent = flat.ToArray<float>();
                var now = codec.StateDict()["residual.5"].ToArray<float>();
                for (int i = 0; i < g.Length; i++)
                    Assert.That(
                        sent[i] + now[i],
                        Is.EqualTo(g[i] + residual[i]).Within(1e-5),
                        $"step {step} element {i}"
                    );
                residual = now;
            }
            Assert.That(codec.ResidualNorm(5), Is.GreaterThan(0), "a random 12×10 matrix is not rank 1");
        });
    }

    [Test]
    public void Two_ranks_get_the_same_bits_and_the_exact_average_of_low_rank_inputs()
    {
        // Each rank holds a rank-1 matrix; their average has rank 2, which rank-2 PowerSGD recovers in one step.
        var inputs = new[] { RankOne(9, 7, 30), RankOne(9, 7, 40) };
        var want = inputs[0].Zip(inputs[1], (a, b) => (a + b) / 2).ToArray();
        var got = new float[2][];
        Ranks.Run(2, pg =>
        {
            var codec = new PowerSgdCodec(2, seed: 8);
            using var flat = Tensor.FromArray((float[])inputs[pg.Rank].Clone());
            codec
                .Exchange(
                    flat,
                    [
                        [9, 7],
                    ],
                    pg,
                    key: 0
                )
                .Work.Wait();
            got[pg.Rank] = flat.ToArray<float>();
        });
        Assert.That(got[1], Is.EqualTo(got[0]), "replicas must stay bit-identical");
        Assert.That(got[0], Is.EqualTo(want).Within(1e-4));
    }

    [Test]
    public void State_round_trips_through_its_state_dict_and_rejects_strangers()
    {
        Ranks.Run(1, pg =>
        {
            var a = (PowerSgdCodec)GradientCodec.Create("powersgd:2", seed: 1);
            using var flat = Tensor.Randn([10 * 8], DType.Float32, new Generator(2));
            a.Exchange(
                    flat,
                    [
                        [10, 8],
                    ],
                    pg,
                    key: 0
                )
                .Work.Wait();
            var state = a.StateDict();
            Assert.That(state.Keys, Is.EquivalentTo(new[] { "residual.0", "q.0" }));
            var b = (PowerSgdCodec)GradientCodec.Create("powersgd:2", seed: 99);
            b.LoadStateDict(state);
            using var next1 = Tensor.Randn([10 * 8], DType.Float32, new Generator(3));
            using var next2 = next1.Clone();
            a.Exchange(
                    next1,
                    [
                        [10, 8],
                    ],
                    pg,
                    key: 0
                )
                .Work.Wait();
            b.Exchange(
                    next2,
                    [
                        [10, 8],
                    ],
                    pg,
                    key: 0
                )
                .Work.Wait();
            Assert.That(
                next2.ToArray<float>(),
                Is.EqualTo(next1.ToArray<float>()),
                "the restored codec continues exactly"
            );
            Assert.Throws<InvalidOperationException>(() =>
                b.LoadStateDict(new Dictionary<string, Tensor> { ["p.0"] = Tensor.Zeros([1]) })
            );
            Assert.Throws<ArgumentException>(() => GradientCodec.Create("powersgd:0"));
            Assert.Throws<ArgumentException>(
                () =>
                    a.Exchange(
                        next1,
                        [
                            [3, 3],
                        ],
                        pg,
                        key: 0
                    ),
                "shapes that do not cover the bucket"
            );
        });
    }
}

[TestFixture]
public class DgcCodecTests
{
    [Test]
    public void Dgc_accumulates_velocity_locally_and_clears_what_it_sent()
    {
        var c = new DgcCodec(0.25, momentum: 0.5); // k = 1 of 4
        var g1 = new float[] { 1, -4, 2, 0.5f };
        var msg = c.Encode(g1, key: 3);
        var sent = new float[4];
        c.Decode(msg, sent);
        Assert.That(sent, Is.EqualTo(new float[] { 0, -4, 0, 0 }), "the largest |v| = |u| = |g| on the first step");
        var state = c.StateDict();
        Assert.That(
            state["residual.3"].ToArray<float>(),
            Is.EqualTo(new float[] { 1, 0, 2, 0.5f }),
            "v keeps the rest, cleared where sent"
        );
        Assert.That(
            state["velocity.3"].ToArray<float>(),
            Is.EqualTo(new float[] { 1, 0, 2, 0.5f }),
            "momentum-factor masking clears u too"
        );
        var g2 = new float[] { 1, 1, 1, 1 };
        c.Decode(c.Encode(g2, key: 3), sent);
        // u = 0.5·[1, 0, 2, 0.5] + 1 = [1.5, 1, 2, 1.25]; v = [1, 0, 2, 0.5] + u = [2.5, 1, 4, 1.75] → sends index 2.
        Assert.That(sent, Is.EqualTo(new float[] { 0, 0, 4, 0 }));
        var restored = new DgcCodec(0.25, momentum: 0.5);
        restored.LoadStateDict(c.StateDict());
        Assert.That(restored.StateDict()["velocity.3"].ToArray<float>(), Is.EqualTo(new float[] { 1.5f, 1, 0, 1.25f }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DgcCodec(0.1, momentum: 1));
        Assert.That(GradientCodec.Create("dgc:0.01"), Is.TypeOf<DgcCodec>());
    }
}
