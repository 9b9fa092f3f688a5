#pragma warning disable CS1591 // XML docs still owed on some public members here (#17)
using System.Globalization;

namespace HpcEngine.Optim;

/// <summary>Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay, in PyTorch's exact order
/// of operations (so results match torch.optim.SGD to rounding): g ← g + wd·p; buf ← g (first step) or μ·buf +
/// (1−dampening)·g; g ← g + μ·buf (Nesterov) or buf; p ← p − lr·g.</summary>
public sealed class Sgd : Optimizer
{
    public double Momentum { get; }
    public double Dampening { get; }
    public double WeightDecay { get; }
    public bool Nesterov { get; }

    public Sgd(
        IEnumerable<Tensor> parameters,
        double lr,
        double momentum = 0,
        double dampening = 0,
        double weightDecay = 0,
        bool nesterov = false
    )
        : base(parameters, lr)
    {
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum needs momentum > 0 and zero dampening");
        (Momentum, Dampening, WeightDecay, Nesterov) = (momentum, dampening, weightDecay, nesterov);
    }

    /// <inheritdoc/>
    protected override void Update(int index, Tensor parameter, Tensor grad)
    {
        bool first = !HasState(index, "momentum_buffer");
        var buffer = Momentum != 0 ? State(index, "momentum_buffer") : null;
        parameter.Backend.SgdStep(
            parameter,
            grad,
            buffer,
            LrOn(parameter.Device),
            Momentum,
            Dampening,
            WeightDecay,
            Nesterov,
            first
        );
    }

    /// <inheritdoc/>
    protected override IEnumerable<KeyValuePair<string, string>> HyperParameters() =>
        [
            new("momentum", Momentum.ToString("R", CultureInfo.InvariantCulture)),
            new("dampening", Dampening.ToString("R", CultureInfo.InvariantCulture)),
            new("weight_decay", WeightDecay.ToString("R", CultureInfo.InvariantCulture)),
            new("nesterov", Nesterov ? "true" : "false"),
        ];
}
