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
            var r = Trainer.Run(TrainConfig.For("mlp") with { Epochs = 2, Seed = 1, EvalEverySteps = 30 }, train, test, "embedded", lines.Add, observers: [recorder]);
            Assert.That(recorder.Steps.Select(s => s.Loss), Is.EqualTo(r.StepLosses), "one event per optimizer step, with its loss");
            Assert.That(recorder.Steps.Select(s => s.Step), Is.EqualTo(Enumerable.Range(1, (int)r.Steps).Select(i => (long)i)));
            Assert.That(recorder.Evaluations.Select(e => (e.WallSeconds, e.Accuracy)), Is.EqualTo(r.Curve), "every point of the accuracy curve");
            Assert.That(recorder.Epochs.Select(e => e.Result), Is.EqualTo(r.Epochs));
            Assert.That(recorder.Epochs.All(e => e.Epochs == 2 && e.Ranks == 1), Is.True);
            Assert.That(lines.Count(l => l.StartsWith("epoch 2/2  loss ", StringComparison.Ordinal) && l.Contains("test accuracy", StringComparison.Ordinal)), Is.EqualTo(1),
                "the console lines still come through the line observer");
        }
    }
}
