using System.Globalization;

namespace HpcEngine.Optim;

/// <summary>Adam (Kingma and Ba) and, with <paramref name="decoupledWeightDecay"/>, AdamW (Loshchilov and Hutter),
/// in PyTorch's order of operations:
/// (AdamW: p ← p·(1 − lr·wd); Adam: g ← g + wd·p); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
/// p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε).</summary>
public class Adam(
    IEnumerable<Tensor> parameters,
    double lr = 1e-3,
    double beta1 = 0.9,
    double beta2 = 0.999,
    double eps = 1e-8,
    double weightDecay = 0,
    bool decoupledWeightDecay = false
) : Optimizer(parameters, lr)
{
    /// <summary>Decay rate of the first-moment (mean) estimate.</summary>
    public double Beta1 { get; } = beta1;

    /// <summary>Decay rate of the second-moment (uncentred variance) estimate.</summary>
    public double Beta2 { get; } = beta2;

    /// <summary>Added to the denominator's square root for numerical stability.</summary>
    public double Eps { get; } = eps;

    /// <summary>L2 penalty (Adam: added to the gradient; AdamW: decoupled, applied to the weights).</summary>
    public double WeightDecay { get; } = weightDecay;

    /// <inheritdoc/>
    protected override void Update(int index, Tensor parameter, Tensor grad)
    {
        // The step count lives with the parameter and is advanced by the backend, with the bias corrections, so a
        // device step reads nothing back and can be captured in a CUDA graph.
        var step = State(index, "step", () => Tensor.Empty([], DType.Float32, parameter.Device, zeroed: true));
        parameter.Backend.AdamStep(
            parameter,
            grad,
            State(index, "exp_avg"),
            State(index, "exp_avg_sq"),
            step,
            LrOn(parameter.Device),
            Beta1,
            Beta2,
            Eps,
            WeightDecay,
            decoupledWeightDecay
        );
    }

    /// <inheritdoc/>
    protected override IEnumerable<KeyValuePair<string, string>> HyperParameters() =>
        [
            new("beta1", Beta1.ToString("R", CultureInfo.InvariantCulture)),
            new("beta2", Beta2.ToString("R", CultureInfo.InvariantCulture)),
            new("eps", Eps.ToString("R", CultureInfo.InvariantCulture)),
            new("weight_decay", WeightDecay.ToString("R", CultureInfo.InvariantCulture)),
        ];
}

/// <summary>AdamW: Adam with decoupled weight decay (default 0.01, as PyTorch).</summary>
public sealed class AdamW(
    IEnumerable<Tensor> parameters,
    double lr = 1e-3,
    double beta1 = 0.9,
    double beta2 = 0.999,
    double eps = 1e-8,
    double weightDecay = 0.01
) : Adam(parameters, lr, beta1, beta2, eps, weightDecay, decoupledWeightDecay: true);
