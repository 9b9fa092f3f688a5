using System.Text.Json;
using HpcEngine.Training;

namespace HpcEngine.Tests.Training;

[TestFixture]
public class ResultJsonTests
{
    [Test]
    public void A_diverged_run_still_writes_valid_json_with_nulls_and_says_it_diverged()
    {
        var r = new TrainResult(
            TrainConfig.For("mlp"),
            "test",
            [],
            [2.3, double.NaN, double.PositiveInfinity],
            0.1,
            0.5,
            1.0,
            10,
            3,
            null,
            [(0.5, 0.3), (1.0, double.NaN)],
            RunMetrics.Single(0.5) with
            {
                ResidualNorm = double.PositiveInfinity,
            }
        );
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

    [Test]
    public void The_summary_is_one_typed_schema_that_reads_back_what_it_wrote()
    {
        var r = new TrainResult(
            TrainConfig.For("cnn"),
            "embedded",
            [new EpochResult(1, 0.9, 0.71, 2.5, 4000)],
            [1.5, 0.9],
            0.71,
            0.72,
            2.5,
            4000,
            78,
            "/ck",
            [(1.2, 0.6), (2.5, 0.71)],
            RunMetrics.Single(2.0) with
            {
                Strategy = "sync",
                Codec = "topk:0.01",
                Workers = 2,
                WireBytes = 12345,
            }
        );
        var json = r.ToJson();
        var back = TrainSummary.Parse(json);
        Assert.That(back.Optimizer, Is.EqualTo("adam"));
        Assert.That(back.FinalTestAccuracy, Is.EqualTo(0.71));
        Assert.That(back.Codec, Is.EqualTo("topk:0.01"));
        Assert.That(back.WireBytes, Is.EqualTo(12345));
        Assert.That(back.PerEpoch, Is.EqualTo(new[] { new EpochSummary(1, 0.9, 0.71, 2.5, 4000) }));
        Assert.That(back.Curve.Select(p => (p[0], p[1])), Is.EqualTo(new[] { (1.2, 0.6), (2.5, 0.71) }));
        Assert.That(back.ToJson(), Is.EqualTo(json), "writing what was read gives the same file");
        Assert.That(
            JsonDocument.Parse(json).RootElement.TryGetProperty("error", out _),
            Is.False,
            "a completed run has no error field"
        );
        var failed = TrainSummary.Failed(
            TrainConfig.For("mlp"),
            new InvalidOperationException("boom"),
            "boom",
            2,
            "embedded"
        );
        var f = JsonDocument.Parse(failed.ToJson()).RootElement;
        Assert.That(f.GetProperty("status").GetString(), Is.EqualTo("failed"));
        Assert.That(f.GetProperty("error_type").GetString(), Is.EqualTo("InvalidOperationException"));
        Assert.That(
            f.GetProperty("final_test_accuracy").ValueKind,
            Is.EqualTo(JsonValueKind.Null),
            "no figure is made up for a failed run"
        );
        Assert.Throws<InvalidDataException>(() => TrainSummary.Parse("null"));
    }
}
