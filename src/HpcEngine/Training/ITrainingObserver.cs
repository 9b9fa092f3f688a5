namespace HpcEngine.Training;

/// <summary>One optimizer step, as the loop reports it (on every rank).</summary>
/// <param name="Step">Steps done so far (1 after the first).</param>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Batch">1-based batch within the epoch.</param>
/// <param name="Loss">This rank's training loss of the step's last micro-batch.</param>
public sealed record StepEvent(long Step, int Epoch, int Batch, double Loss);

/// <summary>Where a run stands, every couple of seconds (rank 0).</summary>
public sealed record ProgressEvent(int Epoch, int Epochs, int Batch, int Batches, double MeanLoss, double SamplesPerSecond,
    double? KilobytesPerStep, double ResidualNorm, TimeSpan Eta);

/// <summary>A test-set evaluation (rank 0): training wall seconds so far (evaluation left out) and the accuracy.</summary>
public sealed record EvaluationEvent(long Step, double WallSeconds, double Accuracy);

/// <summary>An epoch's figures (rank 0), with the run's epoch count, the number of ranks and the strategy's name.</summary>
public sealed record EpochEvent(EpochResult Result, int Epochs, int Ranks, string? Strategy);

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
}

/// <summary>The console lines `hpcengine train` prints (and the strategy benchmark reads): progress with rate and
/// ETA, one line per epoch, and the messages.</summary>
public sealed class LineObserver(Action<string> write) : ITrainingObserver
{
    public void OnMessage(string message) => write(message);

    public void OnProgress(ProgressEvent p)
    {
        string comm = p.KilobytesPerStep is double kb ? $"  {kb:F1} KB/step sent{(p.ResidualNorm > 0 ? $", residual {p.ResidualNorm:G3}" : "")}" : "";
        write($"epoch {p.Epoch}/{p.Epochs}  batch {p.Batch}/{p.Batches}  loss {p.MeanLoss:F4}  {p.SamplesPerSecond:F0} samples/s{comm}  ETA {p.Eta:hh\\:mm\\:ss}");
    }

    public void OnEpoch(EpochEvent e) =>
        write($"epoch {e.Result.Epoch}/{e.Epochs}  loss {e.Result.TrainLoss:F4}  test accuracy {e.Result.TestAccuracy:F4}  {e.Result.SamplesPerSecond:F0} samples/s{(e.Ranks > 1 ? $" ({e.Ranks} ranks, {e.Strategy})" : "")}  {e.Result.Seconds:F1}s");
}
