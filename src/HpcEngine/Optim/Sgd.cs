using System.Globalization;
using System.Numerics.Tensors;
using HpcEngine.Backends.Cpu;

namespace HpcEngine.Optim;

/// <summary>Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay, in PyTorch's exact
/// order of operations (so results match torch.optim.SGD to rounding):
/// g ← g + wd·p; buf ← g (first step) or μ·buf + (1−dampening)·g; g ← g + μ·buf (Nesterov) or buf; p ← p − lr·g.</summary>
public sealed class Sgd : Optimizer
{
    public double Momentum { get; }
    public double Dampening { get; }
    public double WeightDecay { get; }
    public bool Nesterov { get; }

    public Sgd(IEnumerable<Tensor> parameters, double lr, double momentum = 0, double dampening = 0, double weightDecay = 0, bool nesterov = false)
        : base(parameters, lr)
    {
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum needs momentum > 0 and zero dampening");
        (Momentum, Dampening, WeightDecay, Nesterov) = (momentum, dampening, weightDecay, nesterov);
    }

    protected override unsafe void Update(int index, Tensor parameter, Tensor grad)
    {
        if (!parameter.IsCpu)
        {
            bool isFirst = !HasState(index, "momentum_buffer");
            var buffer = Momentum != 0 ? State(index, "momentum_buffer") : null;
            Backends.DeviceBackends.For(parameter.Device).SgdStep(parameter, grad, buffer, DeviceLr(parameter.Device), Momentum, Dampening, WeightDecay, Nesterov, isFirst);
            return;
        }
        float* p = parameter.Ptr<float>(), g = grad.Ptr<float>();
        int n = parameter.NumEl;
        float lr = (float)Lr, wd = (float)WeightDecay, mu = (float)Momentum, damp = (float)(1 - Dampening);
        bool first = !HasState(index, "momentum_buffer");
        float* buf = Momentum != 0 ? State(index, "momentum_buffer").Ptr<float>() : null;
        bool nesterov = Nesterov;
        // SIMD passes over chunks that stay in cache; the scratch d holds g + wd·p.
        CpuThreads.For(n, n * 4L, (s, e) =>
        {
            Span<float> d = stackalloc float[Math.Min(Chunk, e - s)];
            for (int c = s; c < e; c += Chunk)
            {
                int len = Math.Min(Chunk, e - c);
                var dc = d[..len];
                var pc = new Span<float>(p + c, len);
                var gc = new ReadOnlySpan<float>(g + c, len);
                if (wd != 0) TensorPrimitives.MultiplyAdd(pc, wd, gc, dc);
                else gc.CopyTo(dc);
                if (buf != null)
                {
                    var bc = new Span<float>(buf + c, len);
                    if (first) dc.CopyTo(bc);
                    else
                    {
                        if (damp != 1) TensorPrimitives.Multiply(dc, damp, dc);
                        TensorPrimitives.MultiplyAdd(bc, mu, dc, bc);
                    }
                    if (nesterov) TensorPrimitives.MultiplyAdd(bc, mu, dc, dc);
                    else bc.CopyTo(dc);
                }
                TensorPrimitives.MultiplyAdd(dc, -lr, pc, pc);
            }
        });
    }

    private const int Chunk = 2048;

    protected override IEnumerable<KeyValuePair<string, string>> HyperParameters() =>
    [
        new("momentum", Momentum.ToString("R", CultureInfo.InvariantCulture)),
        new("dampening", Dampening.ToString("R", CultureInfo.InvariantCulture)),
        new("weight_decay", WeightDecay.ToString("R", CultureInfo.InvariantCulture)),
        new("nesterov", Nesterov ? "true" : "false"),
    ];
}
