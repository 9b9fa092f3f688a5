using System.Diagnostics;
using System.Text.Json;
using HpcEngine.Training;

namespace HpcEngine.Serving;

/// <summary>The recent history of a run for the live dashboard: loss per step, test accuracy per evaluation,
/// throughput per progress report, and this rank's step timeline (compute and exchange of each step), each bounded (the
/// newest points are kept). Written by the training thread, read by the web server's: guarded by one lock.</summary>
public sealed class TrainingHistory
{
    private const int Limit = 2000;
    private readonly object _gate = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Queue<double[]> _loss = new(),
        _accuracy = new(),
        _throughput = new(),
        _timeline = new();
    private long _step;
    private int _epoch;
    private string _state = "running";

    private static void Add(Queue<double[]> q, params double[] point)
    {
        q.Enqueue(point);
        if (q.Count > Limit)
            q.Dequeue();
    }

    internal void Step(StepEvent s)
    {
        lock (_gate)
        {
            _step = s.Step;
            _epoch = s.Epoch;
            if (double.IsFinite(s.Loss))
                Add(_loss, s.Step, s.Loss);
        }
    }

    internal void Exchange(StrategyStepEvent s, double compute)
    {
        lock (_gate)
            Add(_timeline, s.Step, compute, s.CommunicationSeconds + s.CompressSeconds, s.WaitSeconds);
    }

    internal void Progress(ProgressEvent p)
    {
        lock (_gate)
            Add(_throughput, _clock.Elapsed.TotalSeconds, p.SamplesPerSecond);
    }

    internal void Evaluation(EvaluationEvent e)
    {
        lock (_gate)
            Add(_accuracy, e.Step, e.Accuracy);
    }

    internal void Finished(Exception? error)
    {
        lock (_gate)
            _state = error == null ? "finished" : $"failed: {error.Message}";
    }

    /// <summary>This rank's place and step timeline as JSON, what another rank's dashboard draws of it:
    /// <c>{rank, step, epoch, state, timeline: [[step, compute, communication, wait]]}</c>.</summary>
    public string TimelineJson(int rank)
    {
        lock (_gate)
            return JsonSerializer.Serialize(
                new Dictionary<string, object>
                {
                    ["rank"] = rank,
                    ["step"] = _step,
                    ["epoch"] = _epoch,
                    ["state"] = _state,
                    ["timeline"] = _timeline.ToArray(),
                }
            );
    }

    /// <summary>The history as JSON: <c>{step, epoch, state, seconds, loss: [[step, loss]], accuracy: [[step, acc]],
    /// throughput: [[seconds, samples/s]], timeline: [[step, compute, communication, wait]]}</c>.</summary>
    public string ToJson()
    {
        lock (_gate)
            return JsonSerializer.Serialize(
                new Dictionary<string, object>
                {
                    ["step"] = _step,
                    ["epoch"] = _epoch,
                    ["state"] = _state,
                    ["seconds"] = _clock.Elapsed.TotalSeconds,
                    ["loss"] = _loss.ToArray(),
                    ["accuracy"] = _accuracy.ToArray(),
                    ["throughput"] = _throughput.ToArray(),
                    ["timeline"] = _timeline.ToArray(),
                }
            );
    }
}
