using System.Globalization;
using System.Numerics.Tensors;
using HpcEngine.Backends.Cpu;

namespace HpcEngine.Optim;

/// <summary>Adam (Kingma and Ba) and, with <paramref name="decoupledWeightDecay"/>, AdamW (Loshchilov and Hutter),
/// in PyTorch's order of operations:
/// (AdamW: p ← p·(1 − lr·wd); Adam: g ← g + wd·p); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
/// p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + ε).</summary>
public class Adam(IEnumerable<Tensor> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8,
    double weightDecay = 0, bool decoupledWeightDecay = false) : Optimizer(parameters, lr)
{
    public double Beta1 { get; } = beta1;
    public double Beta2 { get; } = beta2;
    public double Eps { get; } = eps;
    public double WeightDecay { get; } = weightDecay;

    protected override unsafe void Update(int index, Tensor parameter, Tensor grad)
    {
        // The step count lives with the parameter: on a device it is advanced there, with the bias corrections, so
        // a step reads nothing back and can be captured in a CUDA graph.
        var stepT = State(index, "step", () => Tensor.Empty([], DType.Float32, parameter.Device, zeroed: true));
        if (!parameter.IsCpu)
        {
            Backends.DeviceBackends.For(parameter.Device).AdamStep(parameter, grad, State(index, "exp_avg"), State(index, "exp_avg_sq"), stepT, DeviceLr(parameter.Device), Beta1, Beta2, Eps,
                WeightDecay, decoupledWeightDecay);
            return;
        }
        double step = stepT.Item() + 1;
        stepT.FillRaw(step);
        float* p = parameter.Ptr<float>(), g = grad.Ptr<float>();
        float* m = State(index, "exp_avg").Ptr<float>(), v = State(index, "exp_avg_sq").Ptr<float>();
        int n = parameter.NumEl;
        float b1 = (float)Beta1, b2 = (float)Beta2, eps = (float)Eps, wd = (float)WeightDecay;
        double bc1 = 1 - Math.Pow(Beta1, step), bc2 = 1 - Math.Pow(Beta2, step);
        float stepSize = (float)(Lr / bc1), bc2Sqrt = (float)Math.Sqrt(bc2), decay = (float)(1 - Lr * WeightDecay);
        bool decoupled = decoupledWeightDecay;
        CpuThreads.For(n, n * 8L, (s, e) =>
        {
            Span<float> t = stackalloc float[Math.Min(2048, e - s)];
            for (int c = s; c < e; c += 2048)
            {
                int len = Math.Min(2048, e - c);
                var tc = t[..len];
                var pc = new Span<float>(p + c, len);
                var mc = new Span<float>(m + c, len);
                var vc = new Span<float>(v + c, len);
                var gc = new ReadOnlySpan<float>(g + c, len);
                bool l2 = wd != 0 && !decoupled;
                if (wd != 0 && decoupled) TensorPrimitives.Multiply(pc, decay, pc);
                if (l2) TensorPrimitives.MultiplyAdd(pc, wd, gc, tc);
                scoped ReadOnlySpan<float> gi = l2 ? tc : gc;
                // m = b1·m + (1−b1)·g ; v = b2·v + (1−b2)·g²
                TensorPrimitives.Lerp(mc, gi, 1 - b1, mc);
                TensorPrimitives.Multiply(vc, b2, vc);
                TensorPrimitives.Multiply(gi, gi, tc);
                TensorPrimitives.MultiplyAdd(tc, 1 - b2, vc, vc);
                // p −= stepSize · m / (√v / √bc2 + eps)
                TensorPrimitives.Sqrt(vc, tc);
                TensorPrimitives.Multiply(tc, 1 / bc2Sqrt, tc);
                TensorPrimitives.Add(tc, eps, tc);
                TensorPrimitives.Divide(mc, tc, tc);
                TensorPrimitives.MultiplyAdd(tc, -stepSize, pc, pc);
            }
        });
    }

    protected override IEnumerable<KeyValuePair<string, string>> HyperParameters() =>
    [
        new("beta1", Beta1.ToString("R", CultureInfo.InvariantCulture)),
        new("beta2", Beta2.ToString("R", CultureInfo.InvariantCulture)),
        new("eps", Eps.ToString("R", CultureInfo.InvariantCulture)),
        new("weight_decay", WeightDecay.ToString("R", CultureInfo.InvariantCulture)),
    ];
}

/// <summary>AdamW: Adam with decoupled weight decay (default 0.01, as PyTorch).</summary>
public sealed class AdamW(IEnumerable<Tensor> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01)
    : Adam(parameters, lr, beta1, beta2, eps, weightDecay, decoupledWeightDecay: true);
