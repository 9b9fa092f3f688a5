using System.Numerics;
using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

internal sealed unsafe partial class CpuBackend
{
    public void Gemm(Tensor a, Tensor b, Tensor c, bool accumulate, bool bf16Inputs = false)
    {
        int m = a.Shape[0],
            k = a.Shape[1],
            n = b.Shape[1];
        if (bf16Inputs && c.DType == DType.Float32)
        {
            // Autocast on the CPU: the operands rounded as a GPU would send them to its bf16 tensor cores.
            using var a16 = Ops.RoundToBf16(a);
            using var b16 = Ops.RoundToBf16(b);
            Sgemm.Run(
                m,
                n,
                k,
                a16.Ptr<float>(),
                a16.Strides[0],
                a16.Strides[1],
                b16.Ptr<float>(),
                b16.Strides[0],
                b16.Strides[1],
                c.Ptr<float>(),
                c.Strides[0],
                accumulate
            );
            return;
        }
        switch (c.DType)
        {
            case DType.Float32:
                Sgemm.Run(
                    m,
                    n,
                    k,
                    a.Ptr<float>(),
                    a.Strides[0],
                    a.Strides[1],
                    b.Ptr<float>(),
                    b.Strides[0],
                    b.Strides[1],
                    c.Ptr<float>(),
                    c.Strides[0],
                    accumulate
                );
                break;
            case DType.Float64:
                Dgemm.Run(
                    m,
                    n,
                    k,
                    a.Ptr<double>(),
                    a.Strides[0],
                    a.Strides[1],
                    b.Ptr<double>(),
                    b.Strides[0],
                    b.Strides[1],
                    c.Ptr<double>(),
                    c.Strides[0],
                    accumulate
                );
                break;
            default:
                throw NoKernel("matmul", c.DType);
        }
    }

    /// <summary>One GEMM per matrix: the CPU GEMM already spreads each over the threads.</summary>
    public void GemmBatched(Tensor a, Tensor b, Tensor c, bool bf16Inputs = false)
    {
        int m = a.Shape[1],
            k = a.Shape[2],
            n = b.Shape[2];
        for (int i = 0; i < a.Shape[0]; i++)
        {
            using var a2 = a.View([m, k], [a.Strides[1], a.Strides[2]], a.Offset + i * a.Strides[0]);
            using var b2 = b.View([k, n], [b.Strides[1], b.Strides[2]], b.Offset + i * b.Strides[0]);
            using var c2 = c.View([m, n], [c.Strides[1], c.Strides[2]], c.Offset + i * c.Strides[0]);
            Gemm(a2, b2, c2, accumulate: false, bf16Inputs);
        }
    }

    public void Sum(Tensor x, int outer, int reduced, int inner, Tensor r, double scale)
    {
        switch (r.DType)
        {
            case DType.Float32:
                Sum<float>(x, outer, reduced, inner, r, scale);
                break;
            case DType.Float64:
                Sum<double>(x, outer, reduced, inner, r, scale);
                break;
            case DType.Int64:
                Sum<long>(x, outer, reduced, inner, r, scale);
                break;
            default:
                throw NoKernel("sum", r.DType, "float32, float64 or int64");
        }
    }

    private static void Sum<T>(Tensor x, int outer, int reduced, int inner, Tensor r, double scale)
        where T : unmanaged, INumber<T>
    {
        T* px = x.Ptr<T>(),
            pr = r.Ptr<T>();
        if (inner == 1)
            ReduceKernels.SumRows(px, outer, reduced, pr);
        // Leading dims reduced (the bias gradient): add whole rows instead of transposing.
        else
            for (int o = 0; o < outer; o++)
                ReduceKernels.SumColumns(px + (long)o * reduced * inner, reduced, inner, pr + (long)o * inner);
        if (scale != 1)
            TensorPrimitives.Multiply(
                new ReadOnlySpan<T>(pr, r.NumEl),
                T.CreateTruncating(scale),
                new Span<T>(pr, r.NumEl)
            );
    }

    public void Extreme(Tensor x, int rows, int n, Tensor? values, Tensor? indices, bool max)
    {
        long* pi = indices != null ? indices.Ptr<long>() : null;
        if (x.DType == DType.Float32)
            ReduceKernels.ExtremeRows(x.Ptr<float>(), rows, n, values != null ? values.Ptr<float>() : null, pi, max);
        else if (x.DType == DType.Float64)
            ReduceKernels.ExtremeRows(x.Ptr<double>(), rows, n, values != null ? values.Ptr<double>() : null, pi, max);
        else
            throw NoKernel(max ? "max" : "min", x.DType);
    }

    public void Scan(ScanOp op, Tensor x, int outer, int n, int inner, Tensor values, Tensor? indices)
    {
        long* pi = indices != null ? indices.Ptr<long>() : null;
        switch (x.DType, op)
        {
            case (DType.Float32, ScanOp.LogSumExp):
                ScanKernels.LogSumExp(x.Ptr<float>(), values.Ptr<float>(), outer, n, inner);
                break;
            case (DType.Float64, ScanOp.LogSumExp):
                ScanKernels.LogSumExp(x.Ptr<double>(), values.Ptr<double>(), outer, n, inner);
                break;
            case (DType.Float32, ScanOp.Sum or ScanOp.Prod):
                ScanKernels.AccumulateWide(x.Ptr<float>(), values.Ptr<float>(), outer, n, inner, op == ScanOp.Prod);
                break;
            case (DType.Float32, _):
                Scan(op, x.Ptr<float>(), values.Ptr<float>(), pi, outer, n, inner);
                break;
            case (DType.Float64, _):
                Scan(op, x.Ptr<double>(), values.Ptr<double>(), pi, outer, n, inner);
                break;
            case (DType.Int64, not ScanOp.LogSumExp):
                Scan(op, x.Ptr<long>(), values.Ptr<long>(), pi, outer, n, inner);
                break;
            default:
                throw NoKernel($"cum{op.ToString().ToLowerInvariant()}", x.DType);
        }
    }

    private static void Scan<T>(ScanOp op, T* x, T* y, long* indices, int outer, int n, int inner)
        where T : unmanaged, System.Numerics.INumber<T>
    {
        if (op is ScanOp.Sum or ScanOp.Prod)
            ScanKernels.Accumulate(x, y, outer, n, inner, op == ScanOp.Prod);
        else
            ScanKernels.Extreme(x, y, indices, outer, n, inner, op == ScanOp.Max);
    }

    public void Sort(Tensor x, int rows, int n, Tensor values, Tensor indices, bool descending)
    {
        long* pi = indices.Ptr<long>();
        if (x.DType == DType.Float32)
            SortKernels.SortRows(x.Ptr<float>(), values.Ptr<float>(), pi, rows, n, descending);
        else if (x.DType == DType.Float64)
            SortKernels.SortRows(x.Ptr<double>(), values.Ptr<double>(), pi, rows, n, descending);
        else if (x.DType == DType.Int64)
            SortKernels.SortRows(x.Ptr<long>(), values.Ptr<long>(), pi, rows, n, descending);
        else
            throw NoKernel("sort", x.DType);
    }

    public void Softmax(Tensor x, Tensor y, int rows, int n, bool log)
    {
        if (y.DType == DType.Float32)
            SoftmaxKernels.Forward(x.Ptr<float>(), y.Ptr<float>(), rows, n, log);
        else if (y.DType == DType.Float64)
            SoftmaxKernels.Forward(x.Ptr<double>(), y.Ptr<double>(), rows, n, log);
        else
            throw NoKernel("softmax", y.DType);
    }

    public void SoftmaxBackward(Tensor y, Tensor g, Tensor dx, int rows, int n, bool log)
    {
        if (dx.DType == DType.Float32)
            SoftmaxKernels.Backward(y.Ptr<float>(), g.Ptr<float>(), dx.Ptr<float>(), rows, n, log);
        else if (dx.DType == DType.Float64)
            SoftmaxKernels.Backward(y.Ptr<double>(), g.Ptr<double>(), dx.Ptr<double>(), rows, n, log);
        else
            throw NoKernel("softmax backward", dx.DType);
    }

    public void CrossEntropy(
        Tensor logits,
        Tensor targets,
        Tensor rowLoss,
        Tensor dlogits,
        long ignoreIndex,
        double smoothing,
        Tensor? counted
    )
    {
        if (logits.DType == DType.Float32)
            CrossEntropy<float>(logits, targets, rowLoss, dlogits, ignoreIndex, smoothing, counted);
        else if (logits.DType == DType.Float64)
            CrossEntropy<double>(logits, targets, rowLoss, dlogits, ignoreIndex, smoothing, counted);
        else
            throw NoKernel("cross_entropy", logits.DType);
    }

    /// <summary>The fused loss and logits gradient from each row's log-softmax (the SIMD softmax kernel, written into
    /// the gradient's memory): loss = −(1−ε)·logp[t] − ε/C·Σ logp, gradient = (p − (1−ε)·onehot − ε/C) /
    /// counted.</summary>
    private static void CrossEntropy<T>(
        Tensor logits,
        Tensor targets,
        Tensor rowLoss,
        Tensor dlogits,
        long ignoreIndex,
        double smoothing,
        Tensor? counted
    )
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int rows = logits.Shape[0],
            cols = logits.Shape[1];
        T* loss = rowLoss.Ptr<T>(),
            grad = dlogits.Ptr<T>();
        long* t = targets.Ptr<long>();
        double count = 1;
        if (counted != null)
        {
            long kept = 0;
            for (int r = 0; r < rows; r++)
                if (t[r] != ignoreIndex)
                    kept++;
            count = Math.Max(1, kept);
            counted.Ptr<T>()[0] = T.CreateTruncating(count);
        }
        SoftmaxKernels.Forward(logits.Ptr<T>(), grad, rows, cols, log: true);
        T keep = T.CreateTruncating(1 - smoothing),
            spread = T.CreateTruncating(smoothing / cols),
            inv = T.CreateTruncating(1 / count);
        CpuThreads.For(rows, (long)rows * cols * 2, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var g = new Span<T>(grad + (long)r * cols, cols);
                long target = t[r];
                if (target == ignoreIndex)
                {
                    loss[r] = T.Zero;
                    g.Clear();
                    continue;
                }
                T picked = g[(int)target];
                loss[r] = smoothing == 0 ? -picked : -keep * picked - spread * TensorPrimitives.Sum<T>(g);
                TensorPrimitives.Exp<T>(g, g);
                g[(int)target] -= keep;
                if (smoothing != 0)
                    TensorPrimitives.Subtract(g, spread, g);
                if (count != 1)
                    TensorPrimitives.Multiply(g, inv, g);
            }
        });
    }
}
