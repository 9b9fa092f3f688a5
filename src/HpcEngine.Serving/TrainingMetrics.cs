using HpcEngine.Training;
using Prometheus;

namespace HpcEngine.Serving;

/// <summary>A training run's figures as Prometheus metrics, labelled with the rank, in a registry of its own: step,
/// epoch, last loss, last test accuracy, samples/s, KB sent per step, compute / communication / wait / compression
/// seconds, the last step's time. Each rank serves its own (see <see cref="TrainingMonitor"/>): the straggler ratio is
/// then a query, <c>max(hpcengine_train_last_step_seconds) / min(hpcengine_train_last_step_seconds)</c>.</summary>
public sealed class TrainingMetrics : ITrainingObserver
{
    /// <summary>The registry /metrics exports.</summary>
    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    private readonly Gauge.Child _step,
        _epoch,
        _loss,
        _accuracy,
        _throughput,
        _kbPerStep,
        _lastStep,
        _finished;
    private readonly Counter.Child _steps,
        _compute,
        _communication,
        _wait,
        _compress;
    private readonly Gauge.Child _generation,
        _worldSize;
    private readonly Counter _membershipChanges;
    private double _stepCompute;
    private readonly string _rank;

    /// <summary>The rank these figures are of.</summary>
    public int Rank { get; }

    /// <summary>The recent history the dashboard draws.</summary>
    public TrainingHistory History { get; } = new();

    /// <summary>Metrics of rank <paramref name="rank"/>.</summary>
    public TrainingMetrics(int rank)
    {
        Rank = rank;
        var f = Metrics.WithCustomRegistry(Registry);
        string r = rank.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Gauge.Child G(string name, string help) => f.CreateGauge(name, help, ["rank"]).WithLabels(r);
        Counter.Child C(string name, string help) => f.CreateCounter(name, help, ["rank"]).WithLabels(r);
        _step = G("hpcengine_train_step", "The last optimizer step.");
        _epoch = G("hpcengine_train_epoch", "The current epoch (1-based).");
        _loss = G("hpcengine_train_loss", "The last step's training loss.");
        _accuracy = G(
            "hpcengine_train_test_accuracy",
            "The last test accuracy (rank 0 evaluates; NaN before the first)."
        );
        _accuracy.Set(double.NaN);
        _throughput = G(
            "hpcengine_train_samples_per_second",
            "Training samples per second, all ranks (rank 0 reports)."
        );
        _kbPerStep = G("hpcengine_train_sent_kilobytes_per_step", "KB this worker sends per step (rank 0 reports).");
        _lastStep = G("hpcengine_train_last_step_seconds", "Compute plus exchange of the last step.");
        _finished = G("hpcengine_train_finished", "1 once the run has ended (2 if it failed).");
        _steps = C("hpcengine_train_steps_total", "Optimizer steps taken.");
        _generation = G(
            "hpcengine_train_membership_generation",
            "The elastic membership generation (0 until a change)."
        );
        _worldSize = G(
            "hpcengine_train_world_size",
            "Ranks in the current generation (elastic runs; 0 until a change)."
        );
        _membershipChanges = f.CreateCounter(
            "hpcengine_train_membership_changes_total",
            "Members lost, left or joined, by kind.",
            ["rank", "kind"]
        );
        _rank = r;
        _compute = C("hpcengine_train_compute_seconds_total", "Forward and backward seconds.");
        _communication = C("hpcengine_train_communication_seconds_total", "Seconds in collectives.");
        _wait = C("hpcengine_train_wait_seconds_total", "Seconds waiting for peers.");
        _compress = C("hpcengine_train_compress_seconds_total", "Seconds in gradient codecs.");
    }

    /// <inheritdoc/>
    public void OnStep(StepEvent step)
    {
        ArgumentNullException.ThrowIfNull(step);
        _step.Set(step.Step);
        _epoch.Set(step.Epoch);
        if (double.IsFinite(step.Loss))
            _loss.Set(step.Loss);
        _steps.Inc();
        History.Step(step);
    }

    /// <inheritdoc/>
    public void OnComputed(ComputeEvent compute)
    {
        ArgumentNullException.ThrowIfNull(compute);
        _compute.Inc(compute.Seconds);
        _stepCompute = compute.Seconds;
        _lastStep.Set(compute.Seconds);
    }

    /// <inheritdoc/>
    public void OnStrategyStep(StrategyStepEvent step)
    {
        ArgumentNullException.ThrowIfNull(step);
        _communication.Inc(step.CommunicationSeconds);
        _wait.Inc(step.WaitSeconds);
        _compress.Inc(step.CompressSeconds);
        _lastStep.Set(_stepCompute + step.Seconds);
        History.Exchange(step, _stepCompute);
    }

    /// <inheritdoc/>
    public void OnProgress(ProgressEvent progress)
    {
        ArgumentNullException.ThrowIfNull(progress);
        _throughput.Set(progress.SamplesPerSecond);
        if (progress.KilobytesPerStep is double kb)
            _kbPerStep.Set(kb);
        History.Progress(progress);
    }

    /// <inheritdoc/>
    public void OnEvaluation(EvaluationEvent evaluation)
    {
        ArgumentNullException.ThrowIfNull(evaluation);
        _accuracy.Set(evaluation.Accuracy);
        History.Evaluation(evaluation);
    }

    /// <inheritdoc/>
    public void OnGeneration(GenerationEvent generation)
    {
        ArgumentNullException.ThrowIfNull(generation);
        _generation.Set(generation.Generation);
        _worldSize.Set(generation.WorldSize);
        foreach (var c in generation.Changes)
            _membershipChanges.WithLabels(_rank, c.Kind).Inc();
    }

    /// <inheritdoc/>
    public void OnFinished(Exception? error)
    {
        _finished.Set(error == null ? 1 : 2);
        History.Finished(error);
    }
}
