using System.Diagnostics;
using HpcEngine.Autograd;
using HpcEngine.Data;
using HpcEngine.NN;

namespace HpcEngine.Training;

/// <summary>A run's test-set evaluations: rank 0 evaluates, and the accuracy-against-time curve leaves evaluation
/// time out. Under strategies that keep the ranks in step, the others wait for it at a barrier whose time is left out
/// of their clocks too (otherwise it would show up as their communication time); parameter-server workers do not
/// wait: they run on while rank 0 evaluates.</summary>
internal sealed class Evaluation(TrainingRun run, Dataset test, Stopwatch clock)
{
    private readonly bool _barrier = run.Group is { Size: > 1 } && run.Server == null;

    public List<(double WallSeconds, double Accuracy)> Curve { get; } = new();
    public double Best { get; private set; } = double.NaN;

    /// <summary>Seconds spent evaluating (or waiting for it) so far.</summary>
    public double Seconds { get; private set; }

    /// <summary>The optimizer step of the last evaluation (−1: none yet).</summary>
    public long LastStep { get; private set; } = -1;

    /// <summary>Whether this rank takes part in an evaluation: rank 0, and the others when they wait for it.</summary>
    public bool TakesPart => run.Lead || _barrier;

    /// <summary>Evaluates at optimizer step <paramref name="step"/>; the accuracy on rank 0, NaN on the
    /// others.</summary>
    public double At(long step, bool barrier = true)
    {
        long start = Stopwatch.GetTimestamp();
        double acc = run.Lead ? Accuracy(run.Model, test).Accuracy : double.NaN;
        if (_barrier && barrier)
            run.Group!.Barrier().Wait();
        double secs = Stopwatch.GetElapsedTime(start).TotalSeconds;
        run.Observers.All(o =>
            o.OnSpan(new SpanEvent(run.Lead ? "evaluate" : "wait for evaluation", "evaluate", start, secs))
        );
        Seconds += secs;
        LastStep = step;
        if (run.Lead)
        {
            Curve.Add((clock.Elapsed.TotalSeconds - Seconds, acc));
            Best = double.IsNaN(Best) ? acc : Math.Max(Best, acc);
            run.Observers.Lead(o => o.OnEvaluation(new EvaluationEvent(step, Curve[^1].WallSeconds, acc)));
        }
        return acc;
    }

    /// <summary>Accuracy (overall and per class) of <paramref name="model"/> in eval mode; the model's mode is
    /// restored.</summary>
    public static (double Accuracy, double[] PerClass) Accuracy(Module model, Dataset data, int batchSize = 1000)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        bool wasTraining = model.Training;
        model.Eval();
        var correct = new long[data.Classes];
        var seen = new long[data.Classes];
        var loader = new DataLoader(
            data,
            new DataLoaderOptions
            {
                BatchSize = batchSize,
                Shuffle = false,
                Prefetch = 0,
            }
        );
        var device = model.Parameters().FirstOrDefault()?.Device ?? Device.Cpu;
        using (GradMode.NoGrad())
            foreach (var batch in loader.Epoch(0))
                using (batch)
                using (var scope = new TensorScope())
                {
                    using var images = batch.Inputs.To(device);
                    using var logits = model.Forward(images).To(Device.Cpu); // argmax on the host: a small copy
                    var pred = logits.ArgMax(1).ToArray<long>();
                    var y = batch.Labels.ToArray<long>();
                    for (int i = 0; i < y.Length; i++)
                    {
                        seen[y[i]]++;
                        if (pred[i] == y[i])
                            correct[y[i]]++;
                    }
                }
        model.Train(wasTraining);
        long total = seen.Sum();
        return (
            total == 0 ? 0 : (double)correct.Sum() / total,
            correct.Zip(seen, (c, s) => s == 0 ? 0 : (double)c / s).ToArray()
        );
    }
}
