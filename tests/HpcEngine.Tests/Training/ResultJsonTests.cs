using System.Text.Json;
using HpcEngine.Training;

namespace HpcEngine.Tests.Training;

[TestFixture]
public class ResultJsonTests
{
    [Test]
    public void A_diverged_run_still_writes_valid_json_with_nulls_and_says_it_diverged()
    {
        var r = new TrainResult(TrainConfig.For("mlp"), "test", [], [2.3, double.NaN, double.PositiveInfinity], 0.1, 0.5, 1.0, 10, 3, null,
            [(0.5, 0.3), (1.0, double.NaN)], RunMetrics.Single(0.5) with { ResidualNorm = double.PositiveInfinity });
        using var doc = JsonDocument.Parse(r.ToJson());
        var root = doc.RootElement;
        Assert.That(root.GetProperty("diverged").GetBoolean(), Is.True);
        var losses = root.GetProperty("step_losses").EnumerateArray().ToArray();
        Assert.That(losses[0].GetDouble(), Is.EqualTo(2.3));
        Assert.That(losses[1].ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(losses[2].ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(root.GetProperty("residual_norm").ValueKind, Is.EqualTo(JsonValueKind.Null));
        Assert.That(root.GetProperty("curve")[1][1].ValueKind, Is.EqualTo(JsonValueKind.Null));
        var healthy = r with { StepLosses = [2.3, 1.2] };
        Assert.That(JsonDocument.Parse(healthy.ToJson()).RootElement.GetProperty("diverged").GetBoolean(), Is.False);
    }
}
