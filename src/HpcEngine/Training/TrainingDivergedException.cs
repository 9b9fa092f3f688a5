namespace HpcEngine.Training;

/// <summary>A training loss became NaN or infinite: the run stopped there (see <see
/// cref="TrainConfig.AllowDivergence"/>).</summary>
public sealed class TrainingDivergedException(long step, int epoch, int batch, double loss) : Exception, ISettingsError
{
    private readonly string _template =
        $"training diverged: the loss is {loss} at step {step} (epoch {epoch}, batch {batch}); lower {{Lr}}, add "
        + $"{{ClipNorm}} or {{WarmupSteps}}, or set {{AllowDivergence}} to record it and go on";

    /// <summary>The optimizer step whose loss was not finite (1-based).</summary>
    public long Step { get; } = step;

    /// <inheritdoc/>
    public override string Message => Describe(p => p);

    /// <inheritdoc/>
    public string Describe(Func<string, string> settingName) => SettingsException.Fill(_template, settingName);
}
