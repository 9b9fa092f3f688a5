using HpcEngine.Parallel;

namespace HpcEngine.Tests.Parallel;

/// <summary>The strategy grammar, parsed in one place: every form reads back as written, bad forms name the
/// rule.</summary>
[TestFixture]
public class StrategySpecTests
{
    [TestCase("sync", StrategyKind.Sync, null, 0, 0)]
    [TestCase("zero1", StrategyKind.Zero1, null, 0, 0)]
    [TestCase("ssp:2", StrategyKind.ParameterServer, 2, 0, 0)]
    [TestCase("ssp:inf", StrategyKind.ParameterServer, null, 0, 0)]
    [TestCase("ssp:0:2", StrategyKind.ParameterServer, 0, 2, 0)]
    [TestCase("localsgd:8", StrategyKind.LocalSgd, null, 0, 8)]
    [TestCase("diloco:32", StrategyKind.DiLoCo, null, 0, 32)]
    public void Every_form_parses_and_reads_back(string text, StrategyKind kind, int? bound, int servers, int period)
    {
        var s = StrategySpec.Parse(text);
        Assert.That(s, Is.EqualTo(new StrategySpec(kind, bound, servers, period)));
        Assert.That(s.ToString(), Is.EqualTo(text));
    }

    [TestCase("syncx", "unknown strategy")]
    [TestCase("sync:2", "unknown strategy")]
    [TestCase("localsgd:0", "positive period")]
    [TestCase("diloco", "unknown strategy")]
    [TestCase("ssp:-1", "staleness bound")]
    [TestCase("ssp:2:0", "dedicated server count")]
    public void Bad_forms_name_the_rule(string text, string mentions) =>
        Assert.That(
            Assert.Throws<ArgumentException>(() => StrategySpec.Parse(text))!.Message,
            Does.Contain(mentions).And.Contain(text)
        );

    [Test]
    public void Codec_checkpoint_and_device_rules_follow_from_the_kind()
    {
        Assert.That(new[] { "sync", "localsgd:4", "diloco:4" }.All(t => StrategySpec.Parse(t).AcceptsCodec), Is.True);
        Assert.That(new[] { "zero1", "ssp:2" }.Any(t => StrategySpec.Parse(t).AcceptsCodec), Is.False);
        Assert.That(
            StrategySpec.Parse("ssp:inf").CanCheckpoint || StrategySpec.Parse("ssp:inf").RunsOnDevices,
            Is.False
        );
        Assert.That(StrategySpec.Parse("zero1").CanCheckpoint && StrategySpec.Parse("zero1").RunsOnDevices, Is.True);
    }
}
