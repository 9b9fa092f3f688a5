using HpcEngine.Backends;

namespace HpcEngine.Tests.Backends;

/// <summary>A device backend whose "device memory" is host arrays the ops never see directly: it serves
/// <see cref="DeviceType.External"/> so the device dispatch — which ops route to the backend, where results are
/// allocated, how autograd and moves behave — is checked on a machine without a GPU. Every primitive is the CPU
/// backend's, run on host views of the device tensors (same bytes, shape, strides and offset); the wrapper counts the
/// calls and the live blocks. The CUDA backend implements the same interface with kernels; only their arithmetic is
/// left to the GPU parity tests.</summary>
internal sealed unsafe class HostDeviceBackend : IBackend
{
    private static readonly IBackend Cpu = DeviceBackends.Cpu;
    private long _liveBlocks;

    /// <summary>Primitive calls by name, so tests can tell that an op ran on the device.</summary>
    public Dictionary<string, int> Calls { get; } = new();

    /// <summary>Device allocations not yet released.</summary>
    public long LiveBlocks => Interlocked.Read(ref _liveBlocks);

    private sealed class Block : IBackendMemory
    {
        private readonly HostDeviceBackend _owner;
        private int _disposed;

        public Block(HostDeviceBackend owner, long bytes)
        {
            _owner = owner;
            Bytes = bytes;
            Data = GC.AllocateArray<byte>((int)Math.Max(bytes, 1), pinned: true);
            Interlocked.Increment(ref owner._liveBlocks);
        }

        public byte[] Data { get; }
        public long Bytes { get; }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
                Interlocked.Decrement(ref _owner._liveBlocks);
        }
    }

    private void Count(string name)
    {
        lock (Calls)
            Calls[name] = Calls.GetValueOrDefault(name) + 1;
    }

    /// <summary>A CPU view of a device tensor's bytes (same shape, strides and offset), disposed with the caller's
    /// scope.</summary>
    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(t))]
    private static Tensor? H(Tensor? t) =>
        t == null
            ? null
            : new(
                Storage.Wrap(((Block)t.Storage.DeviceMemory).Data),
                t.DType,
                t.ShapeArray,
                t.Strides.ToArray(),
                t.Offset
            );

    public IBackendMemory Allocate(Device device, long bytes) => new Block(this, bytes);

    public void CopyFromHost(IBackendMemory dst, long dstOffsetBytes, ReadOnlySpan<byte> src)
    {
        Count("host_to_device");
        src.CopyTo(((Block)dst).Data.AsSpan((int)dstOffsetBytes));
    }

    public void CopyToHost(Span<byte> dst, IBackendMemory src, long srcOffsetBytes) =>
        ((Block)src).Data.AsSpan((int)srcOffsetBytes, dst.Length).CopyTo(dst);

    public bool Capturing => false;

    /// <summary>Graphs on the test device: the warm-up runs, the capture records the step without running it (as a
    /// GPU's does), and each replay runs it again — what a faithful graph replay computes for a static step.</summary>
    private sealed class RerunGraph(Action step) : IDeviceGraph
    {
        public void Replay() => step();

        public void Dispose() { }
    }

    public IDeviceGraph CaptureGraph(Action step, int warmup)
    {
        Count("capture_graph");
        for (int i = 0; i < warmup; i++)
            step();
        return new RerunGraph(step);
    }

    public void Fill(Tensor r, double value)
    {
        Count("fill");
        using var scope = new TensorScope();
        Cpu.Fill(H(r), value);
    }

    public void Copy(Tensor src, Tensor dst)
    {
        Count("copy");
        using var scope = new TensorScope();
        Cpu.Copy(H(src), H(dst));
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor r)
    {
        Count("binary");
        using var scope = new TensorScope();
        Cpu.Binary(op, H(a), H(b), H(r));
    }

    public void Unary(UnaryOp op, Tensor x, Tensor r, double alpha)
    {
        Count("unary");
        using var scope = new TensorScope();
        Cpu.Unary(op, H(x), H(r), alpha);
    }

    public void Clamp(Tensor x, Tensor r, double lo, double hi)
    {
        Count("clamp");
        using var scope = new TensorScope();
        Cpu.Clamp(H(x), H(r), lo, hi);
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor g, Tensor dx, double alpha)
    {
        Count("unary_backward");
        using var scope = new TensorScope();
        Cpu.UnaryBackward(op, H(x), H(y), H(g), H(dx), alpha);
    }

    public void GemmBatched(Tensor a, Tensor b, Tensor c, bool bf16Inputs = false)
    {
        Count("gemm_batched");
        using var scope = new TensorScope();
        Cpu.GemmBatched(H(a), H(b), H(c), bf16Inputs);
    }

    public void Gemm(Tensor a, Tensor b, Tensor c, bool accumulate, bool bf16Inputs = false)
    {
        Count(bf16Inputs ? "gemm_bf16" : "gemm");
        using var scope = new TensorScope();
        Cpu.Gemm(H(a), H(b), H(c), accumulate, bf16Inputs);
    }

    public void Sum(Tensor x, int outer, int reduced, int inner, Tensor r, double scale)
    {
        Count("sum");
        using var scope = new TensorScope();
        Cpu.Sum(H(x), outer, reduced, inner, H(r), scale);
    }

    public void Softmax(Tensor x, Tensor y, int rows, int n, bool log)
    {
        Count("softmax");
        using var scope = new TensorScope();
        Cpu.Softmax(H(x), H(y), rows, n, log);
    }

    public void SoftmaxBackward(Tensor y, Tensor g, Tensor dx, int rows, int n, bool log)
    {
        Count("softmax_backward");
        using var scope = new TensorScope();
        Cpu.SoftmaxBackward(H(y), H(g), H(dx), rows, n, log);
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
        using var scope = new TensorScope();
        Cpu.CrossEntropy(H(logits), H(targets), H(rowLoss), H(dlogits), ignoreIndex, smoothing, H(counted));
    }

    public void Im2Col(Tensor x, int group, int cg, Conv2dGeometry geo, Tensor cols)
    {
        Count("im2col");
        using var scope = new TensorScope();
        Cpu.Im2Col(H(x), group, cg, geo, H(cols));
    }

    public void Col2Im(Tensor cols, int group, int cg, Conv2dGeometry geo, Tensor dx)
    {
        Count("col2im");
        using var scope = new TensorScope();
        Cpu.Col2Im(H(cols), group, cg, geo, H(dx));
    }

    public Tensor MaxPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo)
    {
        Count("maxpool");
        var indices = Tensor.Empty(y.ShapeArray, DType.Int64, Device.External());
        using var scope = new TensorScope(); // disposes the host views and the CPU's indices
        Cpu.Copy(Cpu.MaxPool(H(x), H(y), planes, geo), H(indices));
        return indices;
    }

    public void MaxPoolBackward(Tensor gy, Tensor indices, Tensor dx, int planes, Conv2dGeometry geo)
    {
        Count("maxpool_backward");
        using var scope = new TensorScope();
        Cpu.MaxPoolBackward(H(gy), H(indices), H(dx), planes, geo);
    }

    public void Embedding(Tensor weight, Tensor ids, Tensor output)
    {
        Count("embedding");
        using var scope = new TensorScope();
        Cpu.Embedding(H(weight), H(ids), H(output));
    }

    public void EmbeddingBackward(Tensor dout, Tensor ids, Tensor dweight)
    {
        Count("embedding_backward");
        using var scope = new TensorScope();
        Cpu.EmbeddingBackward(H(dout), H(ids), H(dweight));
    }

    public void Extreme(Tensor x, int rows, int n, Tensor? values, Tensor? indices, bool max)
    {
        Count("extreme");
        using var scope = new TensorScope();
        Cpu.Extreme(H(x), rows, n, H(values), H(indices), max);
    }

    public void Compare(CompareOp op, Tensor a, Tensor b, Tensor r)
    {
        Count("compare");
        using var scope = new TensorScope();
        Cpu.Compare(op, H(a), H(b), H(r));
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor r)
    {
        Count("where");
        using var scope = new TensorScope();
        Cpu.Where(H(condition), H(a), H(b), H(r));
    }

    public void Gather(Tensor x, int dim, Tensor index, Tensor r)
    {
        Count("gather");
        using var scope = new TensorScope();
        Cpu.Gather(H(x), dim, H(index), H(r));
    }

    public void ScatterAdd(Tensor r, int dim, Tensor index, Tensor src)
    {
        Count("scatter_add");
        using var scope = new TensorScope();
        Cpu.ScatterAdd(H(r), dim, H(index), H(src));
    }

    public void Scatter(Tensor r, int dim, Tensor index, Tensor src)
    {
        Count("scatter");
        using var scope = new TensorScope();
        Cpu.Scatter(H(r), dim, H(index), H(src));
    }

    public void Scan(ScanOp op, Tensor x, int outer, int n, int inner, Tensor values, Tensor? indices)
    {
        Count("scan");
        using var scope = new TensorScope();
        Cpu.Scan(op, H(x), outer, n, inner, H(values), H(indices));
    }

    public void Sort(Tensor x, int rows, int n, Tensor values, Tensor indices, bool descending)
    {
        Count("sort");
        using var scope = new TensorScope();
        Cpu.Sort(H(x), rows, n, H(values), H(indices), descending);
    }

    public void Bernoulli(Tensor r, Generator generator, ulong seed, ulong start, double p, double value)
    {
        Count("bernoulli");
        using var scope = new TensorScope();
        Cpu.Bernoulli(H(r), generator, seed, start, p, value);
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
        using var scope = new TensorScope();
        Cpu.LayerNorm(H(x), H(weight), H(bias), H(y), H(mean), H(rstd), rows, n, eps);
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
        using var scope = new TensorScope();
        Cpu.LayerNormBackward(H(x), H(weight), H(mean), H(rstd), H(dy), H(dx), H(dweight), H(dbias), rows, n);
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
        using var scope = new TensorScope();
        Cpu.BatchNorm(H(x), H(y), n, c, l, H(weight), H(bias), H(mean), H(rstd), batchStats, eps);
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
        using var scope = new TensorScope();
        Cpu.BatchNormBackward(
            H(x),
            H(g),
            H(dx),
            H(dweight),
            H(dbias),
            n,
            c,
            l,
            H(weight),
            H(mean),
            H(rstd),
            batchStats
        );
    }

    public void AvgPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Count("avgpool");
        using var scope = new TensorScope();
        Cpu.AvgPool(H(x), H(y), planes, geo, countIncludePad);
    }

    public void AvgPoolBackward(Tensor gy, Tensor dx, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Count("avgpool_backward");
        using var scope = new TensorScope();
        Cpu.AvgPoolBackward(H(gy), H(dx), planes, geo, countIncludePad);
    }

    public void EncodeMessage(MessageFormat format, Tensor v, Tensor scale, Tensor msg, ulong seed, ulong start)
    {
        Count("encode_message");
        using var scope = new TensorScope();
        Cpu.EncodeMessage(format, H(v), H(scale), H(msg), seed, start);
    }

    public void DecodeAddMessage(MessageFormat format, Tensor msg, Tensor sum)
    {
        Count("decode_message");
        using var scope = new TensorScope();
        Cpu.DecodeAddMessage(format, H(msg), H(sum));
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
        using var scope = new TensorScope();
        Cpu.SgdStep(H(p), H(g), H(buffer), H(lr), momentum, dampening, weightDecay, nesterov, first);
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
        using var scope = new TensorScope();
        Cpu.AdamStep(H(p), H(g), H(m), H(v), H(step), H(lr), beta1, beta2, eps, weightDecay, decoupled);
    }
}
