namespace HpcEngine.Training;

/// <summary>One optimizer step, as the loop reports it (on every rank).</summary>
/// <param name="Step">Steps done so far (1 after the first).</param>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Batch">1-based batch within the epoch.</param>
/// <param name="Loss">This rank's training loss of the step's last micro-batch.</param>
public sealed record StepEvent(long Step, int Epoch, int Batch, double Loss);

/// <summary>Where a run stands, every couple of seconds (rank 0).</summary>
public sealed record ProgressEvent(
    int Epoch,
    int Epochs,
    int Batch,
    int Batches,
    double MeanLoss,
    double SamplesPerSecond,
    double? KilobytesPerStep,
    double ResidualNorm,
    TimeSpan Eta
);

/// <summary>A test-set evaluation (rank 0): training wall seconds so far (evaluation left out) and the
/// accuracy.</summary>
public sealed record EvaluationEvent(long Step, double WallSeconds, double Accuracy);

/// <summary>An epoch's figures (rank 0), with the run's epoch count, the number of ranks and the strategy's
/// name.</summary>
public sealed record EpochEvent(EpochResult Result, int Epochs, int Ranks, string? Strategy);

/// <summary>A micro-batch's forward and backward (every rank): when it began (a <see
/// cref="System.Diagnostics.Stopwatch"/> timestamp) and how long it took.</summary>
public sealed record ComputeEvent(long Step, long StartTimestamp, double Seconds);

/// <summary>A strategy's step (every rank, under a strategy): when it began, how long it took, and how much of that was
/// compression, communication and waiting on other ranks (the rest is the optimizer).</summary>
public sealed record StrategyStepEvent(
    long Step,
    long StartTimestamp,
    double Seconds,
    double CompressSeconds,
    double CommunicationSeconds,
    double WaitSeconds
);

/// <summary>A timed section of the loop that is neither compute nor a strategy step (every rank): evaluation, or
/// waiting for rank 0's evaluation.</summary>
public sealed record SpanEvent(string Name, string Category, long StartTimestamp, double Seconds);

/// <summary>An elastic run's membership changed: the generation it formed, its world size, and what changed (lost,
/// left or joined members, with the recovery time). Every member hears it.</summary>
public sealed record GenerationEvent(
    long Step,
    int Generation,
    int WorldSize,
    IReadOnlyList<MembershipSummary> Changes
);

/// <summary>What a training run tells whoever watches it: progress output, live metrics, a dashboard. Every method
/// has an empty default, so an observer implements what it needs. Observers run on the training thread: keep them
/// cheap (queue the work elsewhere for anything slow).</summary>
public interface ITrainingObserver
{
    /// <summary>A line for people (resume decisions, the dedicated-server notice, ...).</summary>
    void OnMessage(string message) { }

    /// <summary>After every optimizer step, on every rank.</summary>
    void OnStep(StepEvent step) { }

    /// <summary>Every couple of seconds within an epoch, on rank 0.</summary>
    void OnProgress(ProgressEvent progress) { }

    /// <summary>After each evaluation, on rank 0.</summary>
    void OnEvaluation(EvaluationEvent evaluation) { }

    /// <summary>After each epoch, on rank 0 (the rate counts every rank's samples).</summary>
    void OnEpoch(EpochEvent epoch) { }

    /// <summary>After each micro-batch's forward and backward, on every rank. An observer may take time here on
    /// purpose — <see cref="StragglerObserver"/> emulates a slower machine so — and that time counts as the rank's
    /// compute.</summary>
    void OnComputed(ComputeEvent compute) { }

    /// <summary>After each strategy step, on every rank that trains under a strategy.</summary>
    void OnStrategyStep(StrategyStepEvent step) { }

    /// <summary>After each other timed section (evaluation), on every rank.</summary>
    void OnSpan(SpanEvent span) { }

    /// <summary>When the run ends, on every rank: <paramref name="error"/> is null when it completed, else what ended
    /// it (observers that write files — <see cref="TraceObserver"/> — write them either way).</summary>
    void OnFinished(Exception? error) { }

    /// <summary>An elastic run formed a new generation (every member).</summary>
    void OnGeneration(GenerationEvent generation) { }
}

/// <summary>The console lines `hpcengine train` prints (and the strategy benchmark reads): progress with rate and
/// ETA, one line per epoch, and the messages.</summary>
public sealed class LineObserver(Action<string> write) : ITrainingObserver
{
    /// <inheritdoc/>
    public void OnMessage(string message) => write(message);

    /// <inheritdoc/>
    public void OnProgress(ProgressEvent p)
    {
        string comm = p.KilobytesPerStep is double kb
            ? $"  {kb:F1} KB/step sent{(p.ResidualNorm > 0 ? $", residual {p.ResidualNorm:G3}" : "")}"
            : "";
        write(
            $"epoch {p.Epoch}/{p.Epochs}  batch {p.Batch}/{p.Batches}  loss {p.MeanLoss:F4}  {p.SamplesPerSecond:F0} "
                + $"samples/s{comm}  ETA {p.Eta:hh\\:mm\\:ss}"
        );
    }

    /// <inheritdoc/>
    public void OnEpoch(EpochEvent e) =>
        write(
            $"epoch {e.Result.Epoch}/{e.Epochs}  loss {e.Result.TrainLoss:F4}  test accuracy {e.Result.TestAccuracy:F4}  {e.Result.SamplesPerSecond:F0} samples/s{(e.Ranks > 1 ? $" ({e.Ranks} ranks, {e.Strategy})" : "")}  {e.Result.Seconds:F1}s"
        );
}
