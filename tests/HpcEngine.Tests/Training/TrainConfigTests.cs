using System.Text.Json;
using HpcEngine.Compression;
using HpcEngine.Parallel;
using HpcEngine.Training;

namespace HpcEngine.Tests.Training;

/// <summary>The typed training config: specs parsed once, errors that name the property, JSON in the spelling users
/// type.</summary>
[TestFixture]
public class TrainConfigTests
{
    [TestCase("none")]
    [TestCase("fp16")]
    [TestCase("bf16")]
    [TestCase("topk:0.01")]
    [TestCase("topk:0.01:200")]
    [TestCase("randomk:0.25")]
    [TestCase("int8")]
    [TestCase("sign")]
    [TestCase("powersgd:2")]
    [TestCase("dgc:0.001")]
    public void A_codec_spec_reads_back_its_own_spelling(string text)
    {
        var spec = CodecSpec.Parse(text);
        Assert.That(spec.ToString(), Is.EqualTo(text));
        Assert.That(CodecSpec.Parse(spec.ToString()), Is.EqualTo(spec));
        Assert.That(spec.Create(seed: 3), Is.Not.Null);
    }

    [Test]
    public void Codec_specs_build_the_codec_they_name()
    {
        Assert.That(CodecSpec.Parse("qsgd"), Is.EqualTo(new CodecSpec(CodecKind.Int8)), "qsgd is int8's other name");
        Assert.That(CodecSpec.Parse("topk:0.1:50"), Is.EqualTo(new CodecSpec(CodecKind.TopK, 0.1, WarmupSteps: 50)));
        Assert.That(CodecSpec.Parse("powersgd:4").Create(), Is.TypeOf<PowerSgdCodec>());
        var dgc = (DgcCodec)CodecSpec.Parse("dgc:0.01").Create(momentum: 0.5);
        Assert.That(dgc.Fraction, Is.EqualTo(0.01));
        Assert.That(CodecSpec.Parse("dgc:0.01").OwnsMomentum, Is.True);
        Assert.That(CodecSpec.Parse("topk:0.01").OwnsMomentum, Is.False);
    }

    [TestCase("zip", "unknown codec 'zip'")]
    [TestCase("topk", "needs a fraction")]
    [TestCase("topk:0", "needs a fraction")]
    [TestCase("topk:1.5", "needs a fraction")]
    [TestCase("topk:0.1:-1", "warm-up")]
    [TestCase("powersgd:0", "positive rank")]
    [TestCase("sign:3", "too many parts")]
    public void Bad_codec_specs_say_what_is_wrong(string text, string says)
    {
        var e = Assert.Throws<ArgumentException>(() => CodecSpec.Parse(text));
        Assert.That(e!.Message, Does.Contain(says));
    }

    [Test]
    public void Validation_errors_name_the_property_and_can_be_worded_in_a_front_ends_names()
    {
        var e = Assert.Throws<TrainConfigException>(() =>
            (TrainConfig.For("mlp") with { SaveEverySteps = 5 }).Validate()
        );
        Assert.That(e!.ParamName, Is.EqualTo(nameof(TrainConfig.SaveEverySteps)));
        Assert.That(e.Message, Is.EqualTo("SaveEverySteps needs CheckpointDir"));
        Assert.That(e.Describe(p => "--" + p.ToLowerInvariant()), Is.EqualTo("--saveeverysteps needs --checkpointdir"));
        var codec = Assert.Throws<TrainConfigException>(() =>
            (
                TrainConfig.For("mlp") with
                {
                    Compress = CodecSpec.Parse("topk:0.1"),
                    Strategy = StrategySpec.Parse("zero1"),
                }
            ).Validate()
        );
        Assert.That(codec!.ParamName, Is.EqualTo(nameof(TrainConfig.Compress)));
        Assert.That(codec.Message, Does.Contain("Compress composes with Strategy sync"));
        var diverged = new TrainingDivergedException(3, 1, 3, double.NaN);
        Assert.That(diverged.Message, Does.Contain("set AllowDivergence"));
        Assert.That(diverged.Describe(p => $"<{p}>"), Does.Contain("lower <Lr>"));
    }

    [Test]
    public void A_config_serializes_its_specs_as_users_write_them_and_reads_them_back()
    {
        var config = TrainConfig.For("cnn") with
        {
            Optimizer = OptimizerKind.AdamW,
            Strategy = StrategySpec.Parse("ssp:2:1"),
            Compress = null,
            Device = Device.Cuda(1),
            Amp = MixedPrecision.Bf16,
        };
        var json = JsonSerializer.Serialize(config);
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        Assert.That(root.GetProperty("Optimizer").GetString(), Is.EqualTo("adamw"));
        Assert.That(root.GetProperty("Strategy").GetString(), Is.EqualTo("ssp:2:1"));
        Assert.That(root.GetProperty("Device").GetString(), Is.EqualTo("cuda:1"));
        Assert.That(root.GetProperty("Amp").GetString(), Is.EqualTo("bf16"));
        var back = JsonSerializer.Deserialize<TrainConfig>(json)!;
        Assert.That(back with { AllowResumeChanges = config.AllowResumeChanges }, Is.EqualTo(config));
        // A checkpoint's config from before the typed members (strings throughout) still reads.
        var old = JsonSerializer.Deserialize<TrainConfig>(
            """{"Model":"mlp","Optimizer":"sgd","Strategy":"localsgd:4","Compress":"topk:0.01","Device":"cpu","Amp":"none"}"""
        )!;
        Assert.That(old.Strategy, Is.EqualTo(new StrategySpec(StrategyKind.LocalSgd, Period: 4)));
        Assert.That(old.Compress, Is.EqualTo(new CodecSpec(CodecKind.TopK, 0.01)));
        var bad = Assert.Throws<JsonException>(() =>
            JsonSerializer.Deserialize<TrainConfig>("""{"Strategy":"ssp:soon"}""")
        );
        Assert.That(bad!.Message, Does.Contain("ssp:soon"));
    }
}
