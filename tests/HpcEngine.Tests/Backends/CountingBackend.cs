using HpcEngine.Backends;

namespace HpcEngine.Tests.Backends;

/// <summary>Counts the primitives an op reaches on a real backend (the CUDA one in the GPU parity runs), under the
/// names <see cref="HostDeviceBackend"/> counts, and forwards each call unchanged.</summary>
internal sealed class CountingBackend(IBackend wrapped) : IBackend
{
    /// <summary>Primitive calls by name.</summary>
    public Dictionary<string, int> Calls { get; } = new();

    private void Count(string name)
    {
        lock (Calls)
            Calls[name] = Calls.GetValueOrDefault(name) + 1;
    }

    public bool Capturing => wrapped.Capturing;

    public IBackendMemory Allocate(Device device, long bytes) => wrapped.Allocate(device, bytes);

    public void CopyFromHost(IBackendMemory dst, long dstOffsetBytes, ReadOnlySpan<byte> src)
    {
        Count("host_to_device");
        wrapped.CopyFromHost(dst, dstOffsetBytes, src);
    }

    public void CopyToHost(Span<byte> dst, IBackendMemory src, long srcOffsetBytes) =>
        wrapped.CopyToHost(dst, src, srcOffsetBytes);

    public void Fill(Tensor r, double value)
    {
        Count("fill");
        wrapped.Fill(r, value);
    }

    public void Copy(Tensor src, Tensor dst)
    {
        Count("copy");
        wrapped.Copy(src, dst);
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor r)
    {
        Count("binary");
        wrapped.Binary(op, a, b, r);
    }

    public void Unary(UnaryOp op, Tensor x, Tensor r, double alpha)
    {
        Count("unary");
        wrapped.Unary(op, x, r, alpha);
    }

    public void Clamp(Tensor x, Tensor r, double lo, double hi)
    {
        Count("clamp");
        wrapped.Clamp(x, r, lo, hi);
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor g, Tensor dx, double alpha)
    {
        Count("unary_backward");
        wrapped.UnaryBackward(op, x, y, g, dx, alpha);
    }

    public void GemmBatched(Tensor a, Tensor b, Tensor c, bool bf16Inputs = false)
    {
        Count("gemm_batched");
        wrapped.GemmBatched(a, b, c, bf16Inputs);
    }

    public void Gemm(Tensor a, Tensor b, Tensor c, bool accumulate, bool bf16Inputs = false)
    {
        Count(bf16Inputs ? "gemm_bf16" : "gemm");
        wrapped.Gemm(a, b, c, accumulate, bf16Inputs);
    }

    public void Sum(Tensor x, int outer, int reduced, int inner, Tensor r, double scale)
    {
        Count("sum");
        wrapped.Sum(x, outer, reduced, inner, r, scale);
    }

    public void Softmax(Tensor x, Tensor y, int rows, int n, bool log)
    {
        Count("softmax");
        wrapped.Softmax(x, y, rows, n, log);
    }

    public void SoftmaxBackward(Tensor y, Tensor g, Tensor dx, int rows, int n, bool log)
    {
        Count("softmax_backward");
        wrapped.SoftmaxBackward(y, g, dx, rows, n, log);
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
        Count("cross_entropy");
        wrapped.CrossEntropy(logits, targets, rowLoss, dlogits, ignoreIndex, smoothing, counted);
    }

    public IDeviceGraph CaptureGraph(Action step, int warmup)
    {
        Count("capture_graph");
        return wrapped.CaptureGraph(step, warmup);
    }

    public void Im2Col(Tensor x, int group, int cg, Conv2dGeometry geo, Tensor cols)
    {
        Count("im2col");
        wrapped.Im2Col(x, group, cg, geo, cols);
    }

    public void Col2Im(Tensor cols, int group, int cg, Conv2dGeometry geo, Tensor dx)
    {
        Count("col2im");
        wrapped.Col2Im(cols, group, cg, geo, dx);
    }

    public Tensor MaxPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo)
    {
        Count("maxpool");
        return wrapped.MaxPool(x, y, planes, geo);
    }

    public void MaxPoolBackward(Tensor gy, Tensor indices, Tensor dx, int planes, Conv2dGeometry geo)
    {
        Count("maxpool_backward");
        wrapped.MaxPoolBackward(gy, indices, dx, planes, geo);
    }

    public void Embedding(Tensor weight, Tensor ids, Tensor output)
    {
        Count("embedding");
        wrapped.Embedding(weight, ids, output);
    }

    public void EmbeddingBackward(Tensor dout, Tensor ids, Tensor dweight)
    {
        Count("embedding_backward");
        wrapped.EmbeddingBackward(dout, ids, dweight);
    }

    public void Extreme(Tensor x, int rows, int n, Tensor? values, Tensor? indices, bool max)
    {
        Count("extreme");
        wrapped.Extreme(x, rows, n, values, indices, max);
    }

    public void Compare(CompareOp op, Tensor a, Tensor b, Tensor r)
    {
        Count("compare");
        wrapped.Compare(op, a, b, r);
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor r)
    {
        Count("where");
        wrapped.Where(condition, a, b, r);
    }

    public void Gather(Tensor x, int dim, Tensor index, Tensor r)
    {
        Count("gather");
        wrapped.Gather(x, dim, index, r);
    }

    public void ScatterAdd(Tensor r, int dim, Tensor index, Tensor src)
    {
        Count("scatter_add");
        wrapped.ScatterAdd(r, dim, index, src);
    }

    public void Scatter(Tensor r, int dim, Tensor index, Tensor src)
    {
        Count("scatter");
        wrapped.Scatter(r, dim, index, src);
    }

    public void Scan(ScanOp op, Tensor x, int outer, int n, int inner, Tensor values, Tensor? indices)
    {
        Count("scan");
        wrapped.Scan(op, x, outer, n, inner, values, indices);
    }

    public void Sort(Tensor x, int rows, int n, Tensor values, Tensor indices, bool descending)
    {
        Count("sort");
        wrapped.Sort(x, rows, n, values, indices, descending);
    }

    public void Bernoulli(Tensor r, Generator generator, ulong seed, ulong start, double p, double value)
    {
        Count("bernoulli");
        wrapped.Bernoulli(r, generator, seed, start, p, value);
    }

    public void LayerNorm(
        Tensor x,
        Tensor? weight,
        Tensor? bias,
        Tensor y,
        Tensor mean,
        Tensor rstd,
        int rows,
        int n,
        double eps
    )
    {
        Count("layer_norm");
        wrapped.LayerNorm(x, weight, bias, y, mean, rstd, rows, n, eps);
    }

    public void LayerNormBackward(
        Tensor x,
        Tensor? weight,
        Tensor mean,
        Tensor rstd,
        Tensor dy,
        Tensor dx,
        Tensor? dweight,
        Tensor? dbias,
        int rows,
        int n
    )
    {
        Count("layer_norm_backward");
        wrapped.LayerNormBackward(x, weight, mean, rstd, dy, dx, dweight, dbias, rows, n);
    }

    public void BatchNorm(
        Tensor x,
        Tensor y,
        int n,
        int c,
        int l,
        Tensor? weight,
        Tensor? bias,
        Tensor mean,
        Tensor rstd,
        bool batchStats,
        double eps
    )
    {
        Count("batch_norm");
        wrapped.BatchNorm(x, y, n, c, l, weight, bias, mean, rstd, batchStats, eps);
    }

    public void BatchNormBackward(
        Tensor x,
        Tensor g,
        Tensor? dx,
        Tensor? dweight,
        Tensor? dbias,
        int n,
        int c,
        int l,
        Tensor? weight,
        Tensor mean,
        Tensor rstd,
        bool batchStats
    )
    {
        Count("batch_norm_backward");
        wrapped.BatchNormBackward(x, g, dx, dweight, dbias, n, c, l, weight, mean, rstd, batchStats);
    }

    public void AvgPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Count("avgpool");
        wrapped.AvgPool(x, y, planes, geo, countIncludePad);
    }

    public void AvgPoolBackward(Tensor gy, Tensor dx, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Count("avgpool_backward");
        wrapped.AvgPoolBackward(gy, dx, planes, geo, countIncludePad);
    }

    public void EncodeMessage(MessageFormat format, Tensor v, Tensor scale, Tensor msg, ulong seed, ulong start)
    {
        Count("encode_message");
        wrapped.EncodeMessage(format, v, scale, msg, seed, start);
    }

    public void DecodeAddMessage(MessageFormat format, Tensor msg, Tensor sum)
    {
        Count("decode_message");
        wrapped.DecodeAddMessage(format, msg, sum);
    }

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
        Count("sgd");
        wrapped.SgdStep(p, g, buffer, lr, momentum, dampening, weightDecay, nesterov, first);
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
        Count("adam");
        wrapped.AdamStep(p, g, m, v, step, lr, beta1, beta2, eps, weightDecay, decoupled);
    }
}
