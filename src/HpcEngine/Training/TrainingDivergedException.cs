namespace HpcEngine.Training;

/// <summary>A training loss became NaN or infinite: the run stopped there (see <see cref="TrainConfig.AllowDivergence"/>).</summary>
public sealed class TrainingDivergedException(long step, int epoch, int batch, double loss)
    : Exception($"training diverged: the loss is {loss} at step {step} (epoch {epoch}, batch {batch}); lower --lr, add --clip-norm or --warmup-steps, or pass --allow-divergence to record it and go on")
{
    public long Step { get; } = step;
}
