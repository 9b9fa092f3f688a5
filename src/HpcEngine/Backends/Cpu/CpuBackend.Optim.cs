using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

internal sealed unsafe partial class CpuBackend
{
    /// <summary>Optimizer steps work through chunks that stay in L1.</summary>
    private const int StepChunk = 2048;

    public void SgdStep(
        Tensor p,
        Tensor g,
        Tensor? buffer,
        Tensor lr,
        double momentum,
        double dampening,
        double weightDecay,
        bool nesterov,
        bool first
    )
    {
        if (p.DType != DType.Float32)
            throw NoKernel("sgd", p.DType, "float32");
        float* pp = p.Ptr<float>(),
            pg = g.Ptr<float>();
        int n = p.NumEl;
        float rate = (float)lr.Item(),
            wd = (float)weightDecay,
            mu = (float)momentum,
            damp = (float)(1 - dampening);
        float* buf = buffer != null ? buffer.Ptr<float>() : null;
        // SIMD passes over each chunk; the scratch d holds g + wd·p.
        CpuThreads.For(n, n * 4L, (s, e) =>
        {
            Span<float> d = stackalloc float[Math.Min(StepChunk, e - s)];
            for (int c = s; c < e; c += StepChunk)
            {
                int len = Math.Min(StepChunk, e - c);
                var dc = d[..len];
                var pc = new Span<float>(pp + c, len);
                var gc = new ReadOnlySpan<float>(pg + c, len);
                if (wd != 0)
                    TensorPrimitives.MultiplyAdd(pc, wd, gc, dc);
                else
                    gc.CopyTo(dc);
                if (buf != null)
                {
                    var bc = new Span<float>(buf + c, len);
                    if (first)
                        dc.CopyTo(bc);
                    else
                    {
                        if (damp != 1)
                            TensorPrimitives.Multiply(dc, damp, dc);
                        TensorPrimitives.MultiplyAdd(bc, mu, dc, bc);
                    }
                    if (nesterov)
                        TensorPrimitives.MultiplyAdd(bc, mu, dc, dc);
                    else
                        bc.CopyTo(dc);
                }
                TensorPrimitives.MultiplyAdd(dc, -rate, pc, pc);
            }
        });
    }

    public void AdamStep(
        Tensor p,
        Tensor g,
        Tensor m,
        Tensor v,
        Tensor step,
        Tensor lr,
        double beta1,
        double beta2,
        double eps,
        double weightDecay,
        bool decoupled
    )
    {
        if (p.DType != DType.Float32)
            throw NoKernel("adam", p.DType, "float32");
        double t = step.Item() + 1;
        Fill(step, t);
        double rate = lr.Item();
        float* pp = p.Ptr<float>(),
            pg = g.Ptr<float>(),
            pm = m.Ptr<float>(),
            pv = v.Ptr<float>();
        int n = p.NumEl;
        float b1 = (float)beta1,
            b2 = (float)beta2,
            e32 = (float)eps,
            wd = (float)weightDecay;
        double bc1 = 1 - Math.Pow(beta1, t),
            bc2 = 1 - Math.Pow(beta2, t);
        float stepSize = (float)(rate / bc1),
            bc2Sqrt = (float)Math.Sqrt(bc2),
            decay = (float)(1 - rate * weightDecay);
        CpuThreads.For(n, n * 8L, (s, e) =>
        {
            Span<float> tmp = stackalloc float[Math.Min(StepChunk, e - s)];
            for (int c = s; c < e; c += StepChunk)
            {
                int len = Math.Min(StepChunk, e - c);
                var tc = tmp[..len];
                var pc = new Span<float>(pp + c, len);
                var mc = new Span<float>(pm + c, len);
                var vc = new Span<float>(pv + c, len);
                var gc = new ReadOnlySpan<float>(pg + c, len);
                bool l2 = wd != 0 && !decoupled;
                if (wd != 0 && decoupled)
                    TensorPrimitives.Multiply(pc, decay, pc);
                if (l2)
                    TensorPrimitives.MultiplyAdd(pc, wd, gc, tc);
                scoped ReadOnlySpan<float> gi = l2 ? tc : gc;
                // m = b1·m + (1−b1)·g ; v = b2·v + (1−b2)·g²
                TensorPrimitives.Lerp(mc, gi, 1 - b1, mc);
                TensorPrimitives.Multiply(vc, b2, vc);
                TensorPrimitives.Multiply(gi, gi, tc);
                TensorPrimitives.MultiplyAdd(tc, 1 - b2, vc, vc);
                // p −= stepSize · m / (√v / √bc2 + eps)
                TensorPrimitives.Sqrt(vc, tc);
                TensorPrimitives.Multiply(tc, 1 / bc2Sqrt, tc);
                TensorPrimitives.Add(tc, e32, tc);
                TensorPrimitives.Divide(mc, tc, tc);
                TensorPrimitives.MultiplyAdd(tc, -stepSize, pc, pc);
            }
        });
    }
}
