using HpcEngine.Backends.Cpu;

namespace HpcEngine.Backends;

/// <summary>The primitive set every device implements, the CPU included (<see cref="CpuBackend"/>): memory, copies,
/// and the kernels the ops dispatch to. An op checks shapes and dtypes, converts its inputs to the dtype the
/// primitive computes in, allocates the results and calls the tensor's backend; composites (var, the norms, one-hot,
/// attention's mask, the losses beyond the fused cross-entropy) are written once above these primitives and so run
/// on every device. Every tensor argument is a view on this backend's device (memory, element offset, shape,
/// strides); results are allocated by the caller, contiguous. A backend lacking a primitive for a dtype throws
/// <see cref="DTypeMismatchException"/> naming the op.
/// <para>To add a device, implement this interface and register it for a <see cref="DeviceType"/> with
/// <see cref="DeviceBackends.Register"/> (HpcEngine.Cuda's <c>CudaBackend</c> is the worked example; the tests'
/// HostDeviceBackend serves <see cref="DeviceType.External"/> over the CPU kernels). To add an op, add its primitive
/// here and implement it in each backend.</para></summary>
public interface IBackend
{
    /// <summary>Device memory of <paramref name="bytes"/> bytes on <paramref name="device"/>, contents
    /// undefined.</summary>
    IBackendMemory Allocate(Device device, long bytes);

    /// <summary>Copies host bytes <paramref name="src"/> into <paramref name="dst"/> at byte offset <paramref
    /// name="dstOffsetBytes"/>.</summary>
    void CopyFromHost(IBackendMemory dst, long dstOffsetBytes, ReadOnlySpan<byte> src);

    /// <summary>Copies <c>dst.Length</c> bytes of <paramref name="src"/> from byte offset <paramref
    /// name="srcOffsetBytes"/> to the host.</summary>
    void CopyToHost(Span<byte> dst, IBackendMemory src, long srcOffsetBytes);

    /// <summary>Every element of contiguous <paramref name="r"/> := value.</summary>
    void Fill(Tensor r, double value);

    /// <summary>dst := src (same shape, any strides on both sides), converting the dtype when they differ.</summary>
    void Copy(Tensor src, Tensor dst);

    /// <summary>r := a op b, where a and b are already expanded to r's shape (broadcast dims have stride 0).</summary>
    void Binary(BinaryOp op, Tensor a, Tensor b, Tensor r);

    /// <summary>r := op(x), elementwise (x contiguous).</summary>
    void Unary(UnaryOp op, Tensor x, Tensor r, double alpha);

    /// <summary>r := x clamped into [lo, hi] (either may be infinite; NaN stays NaN), contiguous.</summary>
    void Clamp(Tensor x, Tensor r, double lo, double hi);

    /// <summary>dx := g · op'(x) (using y = op(x) where the derivative is cheaper from it), all contiguous.</summary>
    void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor g, Tensor dx, double alpha);

    /// <summary>c[i] := a[i]·b[i] for i &lt; batch: a [batch, m, k] and b [batch, k, n] views whose batch stride may be
    /// 0 (broadcast), c [batch, m, n] contiguous. One strided-batched GEMM instead of a launch per matrix.</summary>
    void GemmBatched(Tensor a, Tensor b, Tensor c, bool bf16Inputs = false);

    /// <summary>c (+)= a·b for 2-D views (a, b any strides; c contiguous rows). With <paramref name="bf16Inputs"/>
    /// (autocast) the operands are rounded to bfloat16 and the products accumulate in float32.</summary>
    void Gemm(Tensor a, Tensor b, Tensor c, bool accumulate, bool bf16Inputs = false);

    /// <summary>r[o, i] := scale · Σ_k x[o, k, i] for contiguous x viewed as [outer, reduced, inner].</summary>
    void Sum(Tensor x, int outer, int reduced, int inner, Tensor r, double scale);

    /// <summary>(log-)softmax over the last dim of contiguous x viewed as [rows, n].</summary>
    void Softmax(Tensor x, Tensor y, int rows, int n, bool log);

    /// <summary>The gradient of (log-)softmax over the last dimension of <paramref name="rows"/> × <paramref name="n"/>
    /// values: from the forward output <paramref name="y"/> and the output gradient <paramref name="g"/> into <paramref
    /// name="dx"/>; <paramref name="log"/> for log-softmax.</summary>
    void SoftmaxBackward(Tensor y, Tensor g, Tensor dx, int rows, int n, bool log);

    /// <summary>Fused cross-entropy of logits [rows, cols] (contiguous) at int64 targets [rows]: rowLoss[r] and
    /// dlogits = (softmax − smoothed one-hot) / counted; rows whose target is ignoreIndex get 0 loss and 0 gradient.
    /// With <paramref name="counted"/> (0-dim float32, for the mean) the backend first writes max(1, rows not ignored)
    /// into it, on the device (nothing read back), and divides by it; without, by 1.</summary>
    void CrossEntropy(
        Tensor logits,
        Tensor targets,
        Tensor rowLoss,
        Tensor dlogits,
        long ignoreIndex,
        double smoothing,
        Tensor? counted
    );

    /// <summary>True while work on this backend's stream is being recorded into a graph (not run): nothing may be
    /// read back to the host, so ops skip their host-side checks.</summary>
    bool Capturing { get; }

    /// <summary>Runs <paramref name="step"/> <paramref name="warmup"/> times, then records it into a graph that
    /// replays it with one launch (see HpcEngine.Cuda's CudaGraph for the rules a step must follow).</summary>
    IDeviceGraph CaptureGraph(Action step, int warmup);

    /// <summary>Unfolds channels [group·cg, (group+1)·cg) of every image of x [N, C, H, W] (contiguous) into
    /// cols [cg·KH·KW, N·OH·OW], image b in columns b·L.. (the CPU backend's layout: one GEMM per group).</summary>
    void Im2Col(Tensor x, int group, int cg, Conv2dGeometry geo, Tensor cols);

    /// <summary>Folds cols back into those channels of dx [N, C, H, W] (zeroed by the caller), summing
    /// overlaps.</summary>
    void Col2Im(Tensor cols, int group, int cg, Conv2dGeometry geo, Tensor dx);

    /// <summary>A whole batch's convolution in one call, where the backend has a kernel for it: y [N, O, OH, OW] :=
    /// conv(x [N, C, H, W], w [O, C/groups, KH, KW]) + bias [O] (optional), all contiguous in the compute dtype;
    /// <paramref name="geo"/> is per group. Returns false, having done nothing, where the backend has none (or not
    /// for this shape): the op then lowers to <see cref="Im2Col"/> and <see cref="Gemm"/>.</summary>
    bool TryConv2d(Tensor x, Tensor w, Tensor? bias, Tensor y, int groups, Conv2dGeometry geo) => false;

    /// <summary>The backward of <see cref="TryConv2d"/> from the output gradient gy: dx (zeroed by the caller)
    /// and/or dw, either may be null; false, having done nothing, where the backend has no such kernel.</summary>
    bool TryConv2dBackward(Tensor x, Tensor w, Tensor gy, Tensor? dx, Tensor? dw, int groups, Conv2dGeometry geo) =>
        false;

    /// <summary>Max pooling of planes × [H, W] (contiguous) into y; returns the argmax indices (in a dtype of the
    /// backend's choosing, read back only by <see cref="MaxPoolBackward"/>).</summary>
    Tensor MaxPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo);

    /// <summary>dx (zeroed by the caller) += gy routed through the argmax indices.</summary>
    void MaxPoolBackward(Tensor gy, Tensor indices, Tensor dx, int planes, Conv2dGeometry geo);

    /// <summary>out[i, :] := weight[ids[i], :] for int64 ids [n] (checked in range by the caller).</summary>
    void Embedding(Tensor weight, Tensor ids, Tensor output);

    /// <summary>dweight (zeroed by the caller) [ids[i], :] += dout[i, :].</summary>
    void EmbeddingBackward(Tensor dout, Tensor ids, Tensor dweight);

    /// <summary>values[r] and/or int64 indices[r] := the max (or min) of row r of contiguous x [rows, n] and the index
    /// of its first occurrence (a NaN wins, as on the CPU).</summary>
    void Extreme(Tensor x, int rows, int n, Tensor? values, Tensor? indices, bool max);

    /// <summary>Bool r := a op b, where a and b (one dtype) are already expanded to r's shape.</summary>
    void Compare(CompareOp op, Tensor a, Tensor b, Tensor r);

    /// <summary>r := condition ? a : b, all three expanded to r's shape (condition bool, a and b of r's
    /// dtype).</summary>
    void Where(Tensor condition, Tensor a, Tensor b, Tensor r);

    /// <summary>Contiguous r (the index's shape) := x picked along <paramref name="dim"/> at int64 index (any strides;
    /// every entry checked in range by the caller).</summary>
    void Gather(Tensor x, int dim, Tensor index, Tensor r);

    /// <summary>Contiguous r along <paramref name="dim"/> at int64 index += src (duplicates accumulate).</summary>
    void ScatterAdd(Tensor r, int dim, Tensor index, Tensor src);

    /// <summary>Contiguous r along <paramref name="dim"/> at int64 index := src (a later duplicate overwrites on the
    /// CPU; which duplicate wins is unspecified elsewhere, as in PyTorch).</summary>
    void Scatter(Tensor r, int dim, Tensor index, Tensor src);

    /// <summary>values (and int64 indices for max/min) := the inclusive scan of contiguous x viewed as [outer, n,
    /// inner] along n; values and indices contiguous of x's shape.</summary>
    void Scan(ScanOp op, Tensor x, int outer, int n, int inner, Tensor values, Tensor? indices);

    /// <summary>Sorts every row of contiguous x [rows, n] into values and int64 indices: stable (equal keys keep
    /// their order), NaN above every number (last ascending, first descending), as PyTorch.</summary>
    void Sort(Tensor x, int rows, int n, Tensor values, Tensor indices, bool descending);

    /// <summary>Contiguous r := value where the Philox draw (seed, start) is below p, else 0: the CPU's Bernoulli
    /// numbers element for element. <paramref name="start"/> was reserved from <paramref name="generator"/>, which a
    /// graph capture needs to replay the draw with fresh numbers.</summary>
    void Bernoulli(Tensor r, Generator generator, ulong seed, ulong start, double p, double value);

    /// <summary>Layer norm of contiguous x [rows, n] over n: y, and per row mean and 1/std (w and b
    /// optional).</summary>
    void LayerNorm(
        Tensor x,
        Tensor? weight,
        Tensor? bias,
        Tensor y,
        Tensor mean,
        Tensor rstd,
        int rows,
        int n,
        double eps
    );

    /// <summary>dx, and dweight/dbias when given, from the saved mean and 1/std.</summary>
    void LayerNormBackward(
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
    );

    /// <summary>Batch norm of contiguous x viewed as [n, c, l]: with <paramref name="batchStats"/> mean and rstd :=
    /// each channel's batch mean and 1/√(biased var + eps), else they are read; y := (x − mean)·rstd·w + b.</summary>
    void BatchNorm(
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
    );

    /// <summary>The batch norm backward: dx, dweight and dbias where given (see the CPU's BatchNormKernels).</summary>
    void BatchNormBackward(
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
    );

    /// <summary>Average pooling of planes × [H, W] (contiguous) into y (the CPU's divisor rules).</summary>
    void AvgPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo, bool countIncludePad);

    /// <summary>dx (zeroed by the caller) += gy spread over each window.</summary>
    void AvgPoolBackward(Tensor gy, Tensor dx, int planes, Conv2dGeometry geo, bool countIncludePad);

    /// <summary>msg (uint8) := the CPU codec's message of contiguous float32 <paramref name="v"/>, with the 0-dim
    /// <paramref name="scale"/> in its header (int8 rounds with the Philox stream at <paramref name="seed"/>,
    /// <paramref name="start"/>).</summary>
    void EncodeMessage(MessageFormat format, Tensor v, Tensor scale, Tensor msg, ulong seed, ulong start);

    /// <summary>sum (float32) += the values message <paramref name="msg"/> stands for.</summary>
    void DecodeAddMessage(MessageFormat format, Tensor msg, Tensor sum);

    /// <summary>One SGD step in place (PyTorch's order; <paramref name="buffer"/> null without momentum). The learning
    /// rate is a 0-dim float32 tensor on the device (the optimizer's), read by the kernel.</summary>
    void SgdStep(
        Tensor p,
        Tensor g,
        Tensor? buffer,
        Tensor lr,
        double momentum,
        double dampening,
        double weightDecay,
        bool nesterov,
        bool first
    );

    /// <summary>One Adam/AdamW step in place: the 0-dim float32 <paramref name="step"/> (on the device) is advanced
    /// to t and the bias corrections 1 − β^t computed there (in double, as the CPU), so nothing is read back.</summary>
    void AdamStep(
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
    );
}
