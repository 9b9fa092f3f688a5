using HpcEngine.Autograd;
using HpcEngine.IO;
using HpcEngine.NN;

namespace HpcEngine.Tests.NN;

[TestFixture]
public class ModuleTests
{
    [Test]
    public void State_dict_names_match_pytorch_for_the_benchmark_models()
    {
        using var mlp = Models.Create("mlp", new Generator(0));
        Assert.That(
            mlp.StateDict().Select(kv => kv.Key),
            Is.EqualTo(new[] { "1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias", "7.weight", "7.bias" })
        );
        Assert.That(mlp.ParameterCount(), Is.EqualTo(247766), "784·256+256 + 256·128+128 + 128·100+100 + 100·10+10");
        using var cnn = Models.Create("cnn", new Generator(0));
        var names = cnn.StateDict().Select(kv => kv.Key).ToArray();
        Assert.That(
            names[..7],
            Is.EqualTo(
                new[]
                {
                    "0.weight",
                    "0.bias",
                    "1.weight",
                    "1.bias",
                    "1.running_mean",
                    "1.running_var",
                    "1.num_batches_tracked",
                }
            )
        );
        Assert.That(names[^4..], Is.EqualTo(new[] { "9.weight", "9.bias", "11.weight", "11.bias" }));
        using var gpt = Models.Create("gpt-mini", new Generator(0));
        var g = gpt.StateDict().Select(kv => kv.Key).ToArray();
        Assert.That(
            g,
            Does.Contain("h.0.attn.c_attn.weight")
                .And.Contain("h.1.mlp.c_proj.bias")
                .And.Contain("ln_f.weight")
                .And.Contain("wpe.weight")
        );
    }

    [Test]
    public void Initialisation_is_fixed_by_the_seed_and_follows_pytorch_bounds()
    {
        using var a = new Linear(400, 50, generator: new Generator(7));
        using var b = new Linear(400, 50, generator: new Generator(7));
        using var c = new Linear(400, 50, generator: new Generator(8));
        Assert.That(a.Weight.ToArray<float>(), Is.EqualTo(b.Weight.ToArray<float>()));
        Assert.That(a.Weight.ToArray<float>(), Is.Not.EqualTo(c.Weight.ToArray<float>()));
        var w = a.Weight.ToArray<float>();
        double bound = 1 / Math.Sqrt(400);
        Assert.That(w.Max(), Is.LessThanOrEqualTo(bound));
        Assert.That(w.Min(), Is.GreaterThanOrEqualTo(-bound));
        Assert.That(
            Math.Sqrt(w.Average(v => v * (double)v)),
            Is.EqualTo(bound / Math.Sqrt(3)).Within(0.05 * bound),
            "uniform(-b, b) has std b/sqrt(3)"
        );
    }

    [Test]
    public void State_dict_round_trips_through_safetensors_with_stable_names()
    {
        string dir = TestSupport.TempDir("hpc-sd-");
        try
        {
            using var src = Models.Create("cnn", new Generator(1));
            using (GradMode.NoGrad())
                src.Eval(); // running stats stay at their defaults; change one to see it copied
            using (GradMode.NoGrad())
                ((BatchNorm)((Sequential)src).Layers[1]).RunningMean.Fill(0.25);
            string path = Path.Combine(dir, "cnn.safetensors");
            Safetensors.Save(path, src.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value));
            using var dst = Models.Create("cnn", new Generator(99));
            var loaded = Safetensors.Load(path);
            dst.LoadStateDict(loaded);
            foreach (var ((n1, t1), (n2, t2)) in src.StateDict().Zip(dst.StateDict()))
            {
                Assert.That(n2, Is.EqualTo(n1));
                Assert.That(t2.ToBytes(), Is.EqualTo(t1.ToBytes()), n1);
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void Loading_a_mismatched_state_dict_names_the_problem()
    {
        using var m = Models.Create("mlp", new Generator(0));
        var sd = m.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        sd.Remove("3.bias");
        sd["extra"] = Tensor.Zeros([1]);
        var ex = Assert.Throws<KeyNotFoundException>(() => m.LoadStateDict(sd));
        Assert.That(ex!.Message, Does.Contain("3.bias").And.Contain("extra"));
        var sd2 = m.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value);
        sd2["1.weight"] = Tensor.Zeros([3, 3]);
        var ex2 = Assert.Throws<ShapeMismatchException>(() => m.LoadStateDict(sd2));
        Assert.That(ex2!.Message, Does.Contain("1.weight"));
    }

    [Test]
    public void Eval_mode_switches_dropout_and_batch_norm_statistics()
    {
        using var m = new Sequential(
            new Linear(4, 4, generator: new Generator(1)),
            new BatchNorm1d(4),
            new Dropout(0.5, new Generator(2))
        );
        using var x = Tensor.Randn([8, 4], DType.Float32, new Generator(3));
        using (GradMode.NoGrad())
        {
            m.Forward(x).Dispose();
            var bn = (BatchNorm)m.Layers[1];
            Assert.That(bn.NumBatchesTracked.Item(), Is.EqualTo(1));
            Assert.That(bn.RunningMean.ToArray<float>(), Is.Not.All.Zero);
            m.Eval();
            Assert.That(m.Layers.All(l => !l.Training), Is.True);
            var y1 = m.Forward(x).ToArray<float>();
            var y2 = m.Forward(x).ToArray<float>();
            Assert.That(y1, Is.EqualTo(y2), "eval is deterministic (no dropout, fixed statistics)");
            Assert.That(bn.NumBatchesTracked.Item(), Is.EqualTo(1), "eval does not update statistics");
        }
    }

    [Test]
    public void Gpt_mini_runs_forward_and_backward_to_every_parameter()
    {
        var cfg = new GptMiniConfig(Vocab: 32, Context: 8, Dim: 16, Heads: 2, Layers: 2);
        using var m = new GptMini(cfg, new Generator(1));
        using var tokens = Tensor.Randint(0, 32, [3, 8], generator: new Generator(2));
        using var scope = new TensorScope();
        var logits = m.Forward(tokens);
        Assert.That(logits.ShapeArray, Is.EqualTo(new[] { 3, 8, 32 }));
        var loss = F.CrossEntropy(logits.Reshape(-1, 32), tokens.Reshape(-1));
        Assert.That(loss.Item(), Is.EqualTo(Math.Log(32)).Within(1.5), "an untrained model is near uniform");
        loss.Backward();
        foreach (var (name, p) in m.NamedParameters())
            Assert.That(p.Grad, Is.Not.Null, $"{name} got no gradient");
        Assert.Throws<ShapeMismatchException>(() => m.Forward(Tensor.Zeros([1, 9], DType.Int64)));
    }

    [Test]
    public void Causal_attention_does_not_look_ahead()
    {
        // Changing the last token must not change the logits at earlier positions.
        var cfg = new GptMiniConfig(Vocab: 16, Context: 6, Dim: 8, Heads: 2, Layers: 1);
        using var m = new GptMini(cfg, new Generator(4));
        using var noGrad = GradMode.NoGrad();
        var a = m.Forward(Tensor.FromArray([1L, 2, 3, 4, 5, 6], 1, 6)).ToArray<float>();
        var b = m.Forward(Tensor.FromArray([1L, 2, 3, 4, 5, 9], 1, 6)).ToArray<float>();
        Assert.That(b[..(5 * 16)], Is.EqualTo(a[..(5 * 16)]));
        Assert.That(b[(5 * 16)..], Is.Not.EqualTo(a[(5 * 16)..]));
    }
}
