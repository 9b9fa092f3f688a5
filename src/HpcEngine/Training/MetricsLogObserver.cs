using System.Diagnostics;
using System.Globalization;

namespace HpcEngine.Training;

/// <summary>Writes one CSV row per optimizer step — step, epoch, batch, loss, wall seconds since the start, and the
/// step's compute, communication, wait and compression seconds — flushed at every row, so the file can be plotted (or
/// tailed) while the run goes. Evaluation rows carry the test accuracy, and an elastic run's changes of membership a
/// row with the new <c>world_size</c> (other columns empty).</summary>
public sealed class MetricsLogObserver : ITrainingObserver, IDisposable
{
    /// <summary>The header row.</summary>
    public const string Header =
        "step,epoch,batch,loss,wall_seconds,compute_seconds,communication_seconds,wait_seconds,compress_seconds,test_accuracy,world_size";

    private readonly TextWriter _out;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private double _compute,
        _communication,
        _wait,
        _compress;

    /// <summary>Writes to <paramref name="writer"/>, which it owns.</summary>
    public MetricsLogObserver(TextWriter writer)
    {
        _out = writer ?? throw new ArgumentNullException(nameof(writer));
        _out.WriteLine(Header);
        _out.Flush();
    }

    /// <inheritdoc/>
    public void OnComputed(ComputeEvent compute)
    {
        ArgumentNullException.ThrowIfNull(compute);
        _compute = compute.Seconds;
    }

    /// <inheritdoc/>
    public void OnStrategyStep(StrategyStepEvent step)
    {
        ArgumentNullException.ThrowIfNull(step);
        (_communication, _wait, _compress) = (step.CommunicationSeconds, step.WaitSeconds, step.CompressSeconds);
    }

    /// <inheritdoc/>
    public void OnStep(StepEvent step)
    {
        ArgumentNullException.ThrowIfNull(step);
        Row(step.Step, step.Epoch, step.Batch, step.Loss, "");
        (_compute, _communication, _wait, _compress) = (0, 0, 0, 0);
    }

    /// <inheritdoc/>
    public void OnEvaluation(EvaluationEvent evaluation)
    {
        ArgumentNullException.ThrowIfNull(evaluation);
        _out.WriteLine(
            string.Create(
                CultureInfo.InvariantCulture,
                $"{evaluation.Step},,,,{_clock.Elapsed.TotalSeconds:F3},,,,,{evaluation.Accuracy:R},"
            )
        );
        _out.Flush();
    }

    /// <inheritdoc/>
    public void OnGeneration(GenerationEvent generation)
    {
        ArgumentNullException.ThrowIfNull(generation);
        _out.WriteLine(
            string.Create(
                CultureInfo.InvariantCulture,
                $"{generation.Step},,,,{_clock.Elapsed.TotalSeconds:F3},,,,,,{generation.WorldSize}"
            )
        );
        _out.Flush();
    }

    private void Row(long step, int epoch, int batch, double loss, string accuracy)
    {
        _out.WriteLine(
            string.Create(
                CultureInfo.InvariantCulture,
                $"{step},{epoch},{batch},{loss:R},{_clock.Elapsed.TotalSeconds:F3},{_compute:R},{_communication:R},{_wait:R},{_compress:R},{accuracy},"
            )
        );
        _out.Flush();
    }

    /// <inheritdoc/>
    public void Dispose() => _out.Dispose();
}
