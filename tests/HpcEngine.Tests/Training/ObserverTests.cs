using HpcEngine.Training;

namespace HpcEngine.Tests.Training;

/// <summary>The training loop's events: what an embedding tool or a dashboard sees agrees with the result.</summary>
[TestFixture]
public class ObserverTests
{
    private sealed class Recorder : ITrainingObserver
    {
        public List<StepEvent> Steps { get; } = new();
        public List<EvaluationEvent> Evaluations { get; } = new();
        public List<EpochEvent> Epochs { get; } = new();

        public void OnStep(StepEvent step) => Steps.Add(step);

        public void OnEvaluation(EvaluationEvent evaluation) => Evaluations.Add(evaluation);

        public void OnEpoch(EpochEvent epoch) => Epochs.Add(epoch);
    }

    [Test]
    public void Steps_evaluations_and_epochs_are_reported_as_the_result_records_them()
    {
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        using (train)
        using (test)
        {
            var recorder = new Recorder();
            var lines = new List<string>();
            var r = Trainer.Run(
                TrainConfig.For("mlp") with
                {
                    Epochs = 2,
                    Seed = 1,
                    EvalEverySteps = 30,
                },
                train,
                test,
                "embedded",
                lines.Add,
                observers: [recorder]
            );
            Assert.That(
                recorder.Steps.Select(s => s.Loss),
                Is.EqualTo(r.StepLosses),
                "one event per optimizer step, with its loss"
            );
            Assert.That(
                recorder.Steps.Select(s => s.Step),
                Is.EqualTo(Enumerable.Range(1, (int)r.Steps).Select(i => (long)i))
            );
            Assert.That(
                recorder.Evaluations.Select(e => (e.WallSeconds, e.Accuracy)),
                Is.EqualTo(r.Curve),
                "every point of the accuracy curve"
            );
            Assert.That(recorder.Epochs.Select(e => e.Result), Is.EqualTo(r.Epochs));
            Assert.That(recorder.Epochs.All(e => e.Epochs == 2 && e.Ranks == 1), Is.True);
            Assert.That(
                lines.Count(l =>
                    l.StartsWith("epoch 2/2  loss ", StringComparison.Ordinal)
                    && l.Contains("test accuracy", StringComparison.Ordinal)
                ),
                Is.EqualTo(1),
                "the console lines still come through the line observer"
            );
        }
    }

    [Test]
    public void Tracing_and_a_straggler_attach_as_observers()
    {
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        var dir = Path.Combine(Path.GetTempPath(), "hpc-trace-" + Guid.NewGuid().ToString("N"));
        using (train)
        using (test)
        {
            try
            {
                var r = Trainer.Run(
                    TrainConfig.For("mlp") with
                    {
                        Epochs = 1,
                        MaxSteps = 6,
                        Seed = 2,
                        TraceDir = dir,
                        Straggler = "0:2",
                    },
                    train,
                    test,
                    "embedded"
                );
                using var doc = System.Text.Json.JsonDocument.Parse(
                    File.ReadAllText(Path.Combine(dir, "trace-rank0.json"))
                );
                var events = doc
                    .RootElement.GetProperty("traceEvents")
                    .EnumerateArray()
                    .Where(e => e.GetProperty("ph").GetString() == "X")
                    .Select(e => (Name: e.GetProperty("name").GetString(), Us: e.GetProperty("dur").GetDouble()))
                    .ToList();
                double compute = events.Where(e => e.Name == "forward+backward").Sum(e => e.Us);
                double delay = events.Where(e => e.Name == "straggler delay").Sum(e => e.Us);
                Assert.That(
                    events.Count(e => e.Name == "forward+backward"),
                    Is.EqualTo(r.Steps),
                    "one compute span per step"
                );
                Assert.That(events.Count(e => e.Name == "evaluate"), Is.EqualTo(1), "the closing evaluation");
                // A sleep lasts at least as long as asked, and what a step's sleep could not cover is carried to the
                // next: factor 2 adds the compute time once more, less at most a millisecond still owed.
                Assert.That(delay, Is.GreaterThanOrEqualTo(compute - 1000), "the straggler doubles the compute time");
            }
            finally
            {
                if (Directory.Exists(dir))
                    Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Test]
    public void A_straggler_spec_for_a_rank_the_job_lacks_is_refused()
    {
        var ex = Assert.Throws<TrainConfigException>(() => StragglerObserver.FactorFor(0, 2, "2:1.5"));
        Assert.That(ex!.Message, Does.Contain("names rank 2").And.Contain("0..1"));
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new StragglerObserver(0.5));
    }
}
