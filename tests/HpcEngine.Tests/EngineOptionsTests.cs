namespace HpcEngine.Tests;

/// <summary>The core's one reader of its environment variables.</summary>
[TestFixture]
public class EngineOptionsTests
{
    [Test]
    public void The_variables_set_the_options_and_malformed_values_leave_the_defaults()
    {
        var set = new Dictionary<string, string>
        {
            ["HPCENGINE_NUM_THREADS"] = "3",
            ["HPCENGINE_SPIN_US"] = "40",
            ["HPCENGINE_POISON_POOL"] = "1",
        };
        var o = EngineOptions.FromEnvironment(v => set.GetValueOrDefault(v));
        Assert.That(o.Threads, Is.EqualTo(3));
        Assert.That(o.WorkerSpin, Is.EqualTo(TimeSpan.FromMicroseconds(40)));
        Assert.That(o.PoisonPool, Is.True);
        var bad = new Dictionary<string, string>
        {
            ["HPCENGINE_NUM_THREADS"] = "0",
            ["HPCENGINE_SPIN_US"] = "-5",
            ["HPCENGINE_POISON_POOL"] = "yes",
        };
        Assert.That(EngineOptions.FromEnvironment(v => bad.GetValueOrDefault(v)), Is.EqualTo(new EngineOptions()));
        Assert.That(new EngineOptions().WorkerSpin, Is.EqualTo(TimeSpan.FromMicroseconds(250)));
    }
}
