using System.Diagnostics;
using HpcEngine.Diagnostics;

namespace HpcEngine.Training;

/// <summary>Records one rank's run as a Chrome trace (<c>trace-rank{R}.json</c> in <paramref name="directory"/>,
/// written when the run ends — also when it fails, so the trace shows where the time went up to the failure):
/// forward+backward, each strategy step split into compression, communication, waiting and the optimizer, and
/// evaluation.</summary>
public sealed class TraceObserver(int rank, string directory) : ITrainingObserver
{
    private TraceRecorder? _recorder = new(rank);

    /// <summary>The file the trace is written to.</summary>
    public string Path { get; } = System.IO.Path.Combine(directory, $"trace-rank{rank}.json");

    /// <summary>Adds a span (another observer's, e.g. the straggler's delay).</summary>
    public void Add(string name, string category, long startTimestamp, double seconds) =>
        _recorder?.Add(name, category, startTimestamp, seconds);

    /// <inheritdoc/>
    public void OnComputed(ComputeEvent compute) =>
        Add("forward+backward", "compute", compute.StartTimestamp, compute.Seconds);

    /// <inheritdoc/>
    public void OnSpan(SpanEvent span) => Add(span.Name, span.Category, span.StartTimestamp, span.Seconds);

    /// <summary>The step's parts are laid end to end inside its span: their durations are measured, their order within
    /// the step is nominal.</summary>
    public void OnStrategyStep(StrategyStepEvent step)
    {
        var parts = new (string Name, string Category, double Seconds)[]
        {
            ("compress", "compression", step.CompressSeconds),
            ("communicate", "communication", step.CommunicationSeconds),
            ("wait for others", "wait", step.WaitSeconds),
        };
        long at = step.StartTimestamp;
        double rest = step.Seconds;
        foreach (var (name, category, seconds) in parts)
        {
            double s = Math.Clamp(seconds, 0, rest);
            Add(name, category, at, s);
            at += (long)(s * Stopwatch.Frequency);
            rest -= s;
        }
        Add("optimizer", "compute", at, rest);
    }

    /// <inheritdoc/>
    public void OnFinished(Exception? error)
    {
        if (_recorder == null)
            return;
        Directory.CreateDirectory(directory);
        _recorder.Write(Path);
        _recorder = null;
    }
}
