using HpcEngine.Autograd;

namespace HpcEngine.Optim;

/// <summary>A learning rate as a function of the step (0-based). Call <see cref="Apply"/> before each optimizer
/// step.</summary>
public abstract class LrSchedule
{
    /// <summary>The rate for <paramref name="step"/>.</summary>
    public abstract double At(long step);

    /// <summary>Sets the optimizer's rate for <paramref name="step"/>.</summary>
    public void Apply(Optimizer optimizer, long step)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        optimizer.Lr = At(step);
    }
}

/// <summary>lr · γ^⌊step / stepSize⌋ (PyTorch's StepLR, counted in steps).</summary>
public sealed class StepLr(double baseLr, long stepSize, double gamma = 0.1) : LrSchedule
{
    /// <inheritdoc/>
    public override double At(long step) => baseLr * Math.Pow(gamma, step / Math.Max(stepSize, 1));
}

/// <summary>Linear warm-up from 0 to the base rate over <c>warmupSteps</c>, then a cosine decay to <c>minLr</c> at
/// <c>totalSteps</c> (constant after).</summary>
public sealed class CosineWithWarmup(double baseLr, long totalSteps, long warmupSteps = 0, double minLr = 0)
    : LrSchedule
{
    /// <summary>The step at which the rate reaches <c>minLr</c>.</summary>
    public long TotalSteps => totalSteps;

    /// <inheritdoc/>
    public override double At(long step)
    {
        if (warmupSteps > 0 && step < warmupSteps)
            return baseLr * (step + 1) / warmupSteps;
        long span = Math.Max(totalSteps - warmupSteps, 1);
        double t = Math.Clamp((double)(step - warmupSteps) / span, 0, 1);
        return minLr + (baseLr - minLr) * 0.5 * (1 + Math.Cos(Math.PI * t));
    }
}
