using System.Globalization;

namespace HpcEngine.Optim;

/// <summary>Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay, in PyTorch's exact order
/// of operations (so results match torch.optim.SGD to rounding): g ← g + wd·p; buf ← g (first step) or μ·buf +
/// (1−dampening)·g; g ← g + μ·buf (Nesterov) or buf; p ← p − lr·g.</summary>
public sealed class Sgd : Optimizer
{
    /// <summary>Momentum factor (0: plain SGD).</summary>
    public double Momentum { get; }

    /// <summary>Dampening of the momentum's gradient term.</summary>
    public double Dampening { get; }

    /// <summary>L2 penalty added to the gradient.</summary>
    public double WeightDecay { get; }

    /// <summary>Nesterov momentum (needs momentum &gt; 0 and no dampening).</summary>
    public bool Nesterov { get; }

    /// <summary>SGD as PyTorch's torch.optim.SGD, with the same argument checks and update rule.</summary>
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
