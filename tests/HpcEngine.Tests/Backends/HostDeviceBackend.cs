using HpcEngine.Backends;
using HpcEngine.Backends.Cpu;

namespace HpcEngine.Tests.Backends;

/// <summary>A device backend whose "device memory" is host arrays the CPU kernels never see directly: it serves
/// <see cref="DeviceType.External"/> so the device dispatch — which ops route to the backend, where results are
/// allocated, how autograd and moves behave — is checked on a machine without a GPU. The CUDA backend implements the
/// same interface with kernels; only their arithmetic is left to the GPU parity tests.</summary>
internal sealed unsafe class HostDeviceBackend : IDeviceBackend
{
    private long _liveBlocks;

    /// <summary>Primitive calls by name, so tests can tell that an op ran on the device.</summary>
    public Dictionary<string, int> Calls { get; } = new();

    public DeviceType Type => DeviceType.External;

    /// <summary>Device allocations not yet released.</summary>
    public long LiveBlocks => Interlocked.Read(ref _liveBlocks);

    private sealed class Block : IDeviceMemory
    {
        private readonly HostDeviceBackend _owner;
        public Block(HostDeviceBackend owner, long bytes)
        {
            _owner = owner;
            Bytes = bytes;
            Data = GC.AllocateArray<byte>((int)Math.Max(bytes, 1), pinned: true);
            Interlocked.Increment(ref owner._liveBlocks);
        }

        public byte[] Data { get; }
        public long Bytes { get; }
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) Interlocked.Decrement(ref _owner._liveBlocks);
        }
    }

    private void Count(string name)
    {
        lock (Calls) Calls[name] = Calls.GetValueOrDefault(name) + 1;
    }

    /// <summary>A CPU view of a device tensor's bytes (same shape, strides and offset).</summary>
    private static Tensor Host(Tensor t) =>
        new(Storage.Wrap(((Block)t.Storage.DeviceMemory).Data), t.DType, t.ShapeArray, t.Strides.ToArray(), t.Offset);

    public IDeviceMemory Allocate(Device device, long bytes) => new Block(this, bytes);

    public void CopyFromHost(IDeviceMemory dst, long dstOffsetBytes, ReadOnlySpan<byte> src)
    {
        Count("host_to_device");
        src.CopyTo(((Block)dst).Data.AsSpan((int)dstOffsetBytes));
    }

    public void CopyToHost(Span<byte> dst, IDeviceMemory src, long srcOffsetBytes) => ((Block)src).Data.AsSpan((int)srcOffsetBytes, dst.Length).CopyTo(dst);

    public void Fill(Tensor r, double value)
    {
        Count("fill");
        using var h = Host(r);
        h.FillRaw(value);
    }

    public void Copy(Tensor src, Tensor dst)
    {
        Count("copy");
        using var hs = Host(src);
        using var hd = Host(dst);
        using var converted = HpcEngine.Ops.ToDType(hs, dst.DType, false);
        CastKernels.CopyStrided(converted, hd);
    }

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor r)
    {
        Count("binary");
        using var ha = Host(a);
        using var hb = Host(b);
        using var hr = Host(r);
        switch (r.DType)
        {
            case DType.Float32: BinaryKernels.Run<float>(op, ha, hb, hr); break;
            case DType.Float64: BinaryKernels.Run<double>(op, ha, hb, hr); break;
            default: throw new DTypeMismatchException($"binary on the test device: {r.DType.TorchName()} is not supported");
        }
    }

    public void Unary(UnaryOp op, Tensor x, Tensor r, double alpha)
    {
        Count("unary");
        using var hx = Host(x);
        using var hr = Host(r);
        if (r.DType == DType.Float32) UnaryKernels.Forward<float>(op, hx, hr, alpha);
        else UnaryKernels.Forward<double>(op, hx, hr, alpha);
    }

    public void Clamp(Tensor x, Tensor r, double lo, double hi)
    {
        Count("clamp");
        using var hx = Host(x);
        using var hr = Host(r);
        switch (x.DType)
        {
            case DType.Float32: UnaryKernels.Clamp<float>(hx, hr, lo, hi); break;
            case DType.Int64: UnaryKernels.Clamp<long>(hx, hr, lo, hi); break;
            default: throw new DTypeMismatchException($"clamp on the test device: {x.DType.TorchName()} is not supported");
        }
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor g, Tensor dx, double alpha)
    {
        Count("unary_backward");
        using var hx = Host(x);
        using var hy = Host(y);
        using var hg = Host(g);
        using var hd = Host(dx);
        if (dx.DType == DType.Float32) UnaryKernels.Backward<float>(op, hx, hy, hg, hd, alpha);
        else UnaryKernels.Backward<double>(op, hx, hy, hg, hd, alpha);
    }

    public void Gemm(Tensor a, Tensor b, Tensor c, bool accumulate, bool bf16Inputs = false)
    {
        Count(bf16Inputs ? "gemm_bf16" : "gemm");
        using var ha = Host(a);
        using var hb = Host(b);
        using var hc = Host(c);
        // The CPU GEMM applies the same rounding while the scope is on (this runs on the caller's thread).
        using (bf16Inputs ? HpcEngine.Autograd.Autocast.Bf16() : HpcEngine.Autograd.Autocast.Off())
            HpcEngine.Ops.Gemm2D(ha, hb, hc, accumulate);
    }

    public void GemmBatched(Tensor a, Tensor b, Tensor c, bool bf16Inputs = false)
    {
        Count("gemm_batched");
        using var ha = Host(a);
        using var hb = Host(b);
        using var hc = Host(c);
        int m = a.Shape[1], k = a.Shape[2], n = b.Shape[2];
        using (bf16Inputs ? HpcEngine.Autograd.Autocast.Bf16() : HpcEngine.Autograd.Autocast.Off())
            for (int i = 0; i < a.Shape[0]; i++)
            {
                using var a2 = ha.View([m, k], [a.Strides[1], a.Strides[2]], ha.Offset + i * a.Strides[0]);
                using var b2 = hb.View([k, n], [b.Strides[1], b.Strides[2]], hb.Offset + i * b.Strides[0]);
                using var c2 = hc.View([m, n], [c.Strides[1], c.Strides[2]], hc.Offset + i * c.Strides[0]);
                HpcEngine.Ops.Gemm2D(a2, b2, c2, accumulate: false);
            }
    }

    public void Sum(Tensor x, int outer, int reduced, int inner, Tensor r, double scale)
    {
        Count("sum");
        using var hx = Host(x);
        using var hr = Host(r);
        var v = hx.ToArray<double>();
        var o = new double[outer * inner];
        for (int a = 0; a < outer; a++)
            for (int k = 0; k < reduced; k++)
                for (int i = 0; i < inner; i++)
                    o[a * inner + i] += v[((long)a * reduced + k) * inner + i];
        using var result = Tensor.FromArray(o.Select(s => s * scale).ToArray());
        using var typed = HpcEngine.Ops.ToDType(result, r.DType, false);
        CastKernels.CopyStrided(typed.View(hr.ShapeArray, hr.Strides.ToArray(), typed.Offset), hr);
    }

    public void Softmax(Tensor x, Tensor y, int rows, int n, bool log)
    {
        Count("softmax");
        using var hx = Host(x);
        using var hy = Host(y);
        if (y.DType == DType.Float32) SoftmaxKernels.Forward(hx.Ptr<float>(), hy.Ptr<float>(), rows, n, log);
        else SoftmaxKernels.Forward(hx.Ptr<double>(), hy.Ptr<double>(), rows, n, log);
    }

    public void SoftmaxBackward(Tensor y, Tensor g, Tensor dx, int rows, int n, bool log)
    {
        Count("softmax_backward");
        using var hy = Host(y);
        using var hg = Host(g);
        using var hd = Host(dx);
        if (dx.DType == DType.Float32) SoftmaxKernels.Backward(hy.Ptr<float>(), hg.Ptr<float>(), hd.Ptr<float>(), rows, n, log);
        else SoftmaxKernels.Backward(hy.Ptr<double>(), hg.Ptr<double>(), hd.Ptr<double>(), rows, n, log);
    }

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
        for (int i = 0; i < warmup; i++) step();
        return new RerunGraph(step);
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor rowLoss, Tensor dlogits, long ignoreIndex, double smoothing, Tensor? countedTensor)
    {
        Count("cross_entropy");
        double counted = 1;
        if (countedTensor != null)
        {
            using var tc = Host(targets);
            counted = Math.Max(1, tc.ToArray<long>().Count(v => v != ignoreIndex));
            using var hc = Host(countedTensor);
            hc.Span<float>()[0] = (float)counted;
        }
        using var hl = Host(logits);
        using var ht = Host(targets);
        using var hr = Host(rowLoss);
        using var hd = Host(dlogits);
        int rows = logits.Shape[0], cols = logits.Shape[1];
        var x = hl.ToArray<double>();
        var t = ht.ToArray<long>();
        var loss = new float[rows];
        var grad = new float[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            if (t[r] == ignoreIndex) continue;
            double mx = double.NegativeInfinity, sum = 0, sx = 0;
            for (int c = 0; c < cols; c++) mx = Math.Max(mx, x[r * cols + c]);
            for (int c = 0; c < cols; c++) { sum += Math.Exp(x[r * cols + c] - mx); sx += x[r * cols + c]; }
            double lse = mx + Math.Log(sum);
            for (int c = 0; c < cols; c++)
                grad[r * cols + c] = (float)((Math.Exp(x[r * cols + c] - mx) / sum - (c == t[r] ? 1 - smoothing : 0) - smoothing / cols) / counted);
            loss[r] = (float)(lse - (1 - smoothing) * x[r * cols + t[r]] - smoothing / cols * sx);
        }
        loss.AsSpan().CopyTo(hr.Span<float>());
        grad.AsSpan().CopyTo(hd.Span<float>());
    }

    public void SgdStep(Tensor p, Tensor g, Tensor? buffer, Tensor lrTensor, double momentum, double dampening, double weightDecay, bool nesterov, bool first)
    {
        Count("sgd");
        double lr = ReadScalar(lrTensor);
        using var hp = Host(p);
        using var hg = Host(g);
        using var hb = buffer != null ? Host(buffer) : null;
        var pv = hp.Span<float>();
        var gv = hg.Span<float>();
        var bv = hb != null ? hb.Span<float>() : default;
        for (int i = 0; i < pv.Length; i++)
        {
            float gi = gv[i] + (float)weightDecay * pv[i];
            if (momentum != 0)
            {
                float b = first ? gi : (float)momentum * bv[i] + (float)(1 - dampening) * gi;
                bv[i] = b;
                gi = nesterov ? gi + (float)momentum * b : b;
            }
            pv[i] -= (float)lr * gi;
        }
    }

    private static double ReadScalar(Tensor t)
    {
        using var h = Host(t);
        return h.Span<float>()[0];
    }

    public void AdamStep(Tensor p, Tensor g, Tensor m, Tensor v, Tensor step, Tensor lrTensor, double beta1, double beta2, double eps, double weightDecay, bool decoupled)
    {
        Count("adam");
        double lr = ReadScalar(lrTensor);
        using var hs = Host(step);
        double t = hs.Span<float>()[0] + 1;
        hs.Span<float>()[0] = (float)t;
        double bias1 = 1 - Math.Pow(beta1, t), bias2 = 1 - Math.Pow(beta2, t);
        using var hp = Host(p);
        using var hg = Host(g);
        using var hm = Host(m);
        using var hv = Host(v);
        var pv = hp.Span<float>();
        var gv = hg.Span<float>();
        var mv = hm.Span<float>();
        var vv = hv.Span<float>();
        for (int i = 0; i < pv.Length; i++)
        {
            float w = pv[i], gi = gv[i];
            if (weightDecay != 0)
            {
                if (decoupled) w -= (float)(lr * weightDecay) * w;
                else gi += (float)weightDecay * w;
            }
            mv[i] = (float)beta1 * mv[i] + (float)(1 - beta1) * gi;
            vv[i] = (float)beta2 * vv[i] + (float)(1 - beta2) * gi * gi;
            pv[i] = w - (float)(lr / bias1) * mv[i] / (MathF.Sqrt(vv[i]) / (float)Math.Sqrt(bias2) + (float)eps);
        }
    }

    public void Im2Col(Tensor x, int group, int cg, Conv2dGeometry geo, Tensor cols)
    {
        Count("im2col");
        using var hx = Host(x);
        using var hc = Host(cols);
        int n = x.Shape[0], l = geo.OH * geo.OW, nl = n * l;
        for (int b = 0; b < n; b++)
        {
            long off = ((long)b * x.Shape[1] + group * cg) * geo.H * geo.W;
            if (x.DType == DType.Float32) ConvKernels.Im2Col(hx.Ptr<float>() + off, geo, hc.Ptr<float>() + (long)b * l, nl);
            else ConvKernels.Im2Col(hx.Ptr<double>() + off, geo, hc.Ptr<double>() + (long)b * l, nl);
        }
    }

    public void Col2Im(Tensor cols, int group, int cg, Conv2dGeometry geo, Tensor dx)
    {
        Count("col2im");
        using var hc = Host(cols);
        using var hd = Host(dx);
        int n = dx.Shape[0], l = geo.OH * geo.OW, nl = n * l;
        for (int b = 0; b < n; b++)
        {
            long off = ((long)b * dx.Shape[1] + group * cg) * geo.H * geo.W;
            if (dx.DType == DType.Float32) ConvKernels.Col2Im(hc.Ptr<float>() + (long)b * l, geo, hd.Ptr<float>() + off, nl);
            else ConvKernels.Col2Im(hc.Ptr<double>() + (long)b * l, geo, hd.Ptr<double>() + off, nl);
        }
    }

    public Tensor MaxPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo)
    {
        Count("maxpool");
        var indices = Tensor.Empty(y.Shape, DType.Int64, y.Device);
        using var hx = Host(x);
        using var hy = Host(y);
        using var hi = Host(indices);
        if (y.DType == DType.Float32) PoolKernels.MaxForward(hx.Ptr<float>(), hy.Ptr<float>(), hi.Ptr<long>(), planes, geo);
        else PoolKernels.MaxForward(hx.Ptr<double>(), hy.Ptr<double>(), hi.Ptr<long>(), planes, geo);
        return indices;
    }

    public void MaxPoolBackward(Tensor gy, Tensor indices, Tensor dx, int planes, Conv2dGeometry geo)
    {
        Count("maxpool_backward");
        using var hg = Host(gy);
        using var hi = Host(indices);
        using var hd = Host(dx);
        if (dx.DType == DType.Float32) PoolKernels.MaxBackward(hg.Ptr<float>(), hi.Ptr<long>(), hd.Ptr<float>(), planes, geo);
        else PoolKernels.MaxBackward(hg.Ptr<double>(), hi.Ptr<long>(), hd.Ptr<double>(), planes, geo);
    }

    public void Embedding(Tensor weight, Tensor ids, Tensor output)
    {
        Count("embedding");
        using var hw = Host(weight);
        using var hi = Host(ids);
        using var ho = Host(output);
        var w = hw.Span<float>();
        var o = ho.Span<float>();
        var id = hi.Span<long>();
        int dim = output.Shape[1];
        for (int i = 0; i < id.Length; i++) w.Slice((int)id[i] * dim, dim).CopyTo(o.Slice(i * dim, dim));
    }

    public void EmbeddingBackward(Tensor dout, Tensor ids, Tensor dweight)
    {
        Count("embedding_backward");
        using var hg = Host(dout);
        using var hi = Host(ids);
        using var hd = Host(dweight);
        var g = hg.Span<float>();
        var d = hd.Span<float>();
        var id = hi.Span<long>();
        int dim = dout.Shape[1];
        for (int i = 0; i < id.Length; i++)
            for (int k = 0; k < dim; k++) d[(int)id[i] * dim + k] += g[i * dim + k];
    }

    public void Extreme(Tensor x, int rows, int n, Tensor? values, Tensor? indices, bool max)
    {
        Count("extreme");
        using var hx = Host(x);
        using var hv = values != null ? Host(values) : Tensor.Empty([rows], DType.Float32);
        using var hi = indices != null ? Host(indices) : Tensor.Empty([rows], DType.Int64);
        ReduceKernels.Rows(max ? ReduceOp.Max : ReduceOp.Min, hx.Ptr<float>(), rows, n, hv.Ptr<float>(), hi.Ptr<long>(), 1);
    }

    public void Compare(CompareOp op, Tensor a, Tensor b, Tensor r)
    {
        Count("compare");
        using var ha = Host(a);
        using var hb = Host(b);
        using var hr = Host(r);
        switch (a.DType)
        {
            case DType.Float32: CompareKernels.Run<float>(op, ha, hb, hr); break;
            case DType.Int64: CompareKernels.Run<long>(op, ha, hb, hr); break;
            case DType.Int32: CompareKernels.Run<int>(op, ha, hb, hr); break;
            default: throw new DTypeMismatchException($"compare on the test device: {a.DType.TorchName()} is not supported");
        }
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor r)
    {
        Count("where");
        using var hc = Host(condition);
        using var ha = Host(a);
        using var hb = Host(b);
        using var hr = Host(r);
        CompareKernels.Where(hc, ha, hb, hr);
    }

    public void Gather(Tensor x, int dim, Tensor index, Tensor r)
    {
        Count("gather");
        using var hx = Host(x);
        using var hi = Host(index);
        using var hr = Host(r);
        IndexKernels.Gather(hx, dim, hi, hr);
    }

    public void ScatterAdd(Tensor r, int dim, Tensor index, Tensor src)
    {
        Count("scatter_add");
        using var hr = Host(r);
        using var hi = Host(index);
        using var hs = Host(src);
        IndexKernels.ScatterAdd<float>(hr, dim, hi, hs);
    }

    public void Bernoulli(Tensor r, Generator generator, ulong seed, ulong start, double p, double value)
    {
        Count("bernoulli");
        using var hr = Host(r);
        var span = hr.Span<float>();
        for (int i = 0; i < span.Length; i++)
            span[i] = Philox.ToUniform(Philox.At(seed, start + (ulong)(i >> 2), i & 3)) < p ? (float)value : 0f;
    }

    public void LayerNorm(Tensor x, Tensor? weight, Tensor? bias, Tensor y, Tensor mean, Tensor rstd, int rows, int n, double eps)
    {
        Count("layer_norm");
        using var hx = Host(x);
        using var hw = weight != null ? Host(weight) : null;
        using var hb = bias != null ? Host(bias) : null;
        using var hy = Host(y);
        using var hm = Host(mean);
        using var hs = Host(rstd);
        LayerNormKernels.Forward(hx.Ptr<float>(), hw != null ? hw.Ptr<float>() : null, hb != null ? hb.Ptr<float>() : null, hy.Ptr<float>(), hm.Ptr<float>(), hs.Ptr<float>(), rows, n, eps);
    }

    public void LayerNormBackward(Tensor x, Tensor? weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor? dweight, Tensor? dbias, int rows, int n)
    {
        Count("layer_norm_backward");
        using var hx = Host(x);
        using var hw = weight != null ? Host(weight) : null;
        using var hm = Host(mean);
        using var hs = Host(rstd);
        using var hg = Host(dy);
        using var hd = Host(dx);
        using var hdw = dweight != null ? Host(dweight) : null;
        using var hdb = dbias != null ? Host(dbias) : null;
        LayerNormKernels.Backward(hx.Ptr<float>(), hw != null ? hw.Ptr<float>() : null, hm.Ptr<float>(), hs.Ptr<float>(), hg.Ptr<float>(), hd.Ptr<float>(),
            hdw != null ? hdw.Ptr<float>() : null, hdb != null ? hdb.Ptr<float>() : null, rows, n);
    }

    public void BatchNorm(Tensor x, Tensor y, int n, int c, int l, Tensor? weight, Tensor? bias, Tensor mean, Tensor rstd, bool batchStats, double eps)
    {
        Count("batch_norm");
        using var hx = Host(x);
        using var hy = Host(y);
        using var hw = weight != null ? Host(weight) : null;
        using var hb = bias != null ? Host(bias) : null;
        using var hm = Host(mean);
        using var hr = Host(rstd);
        BatchNormKernels.Forward(hx.Ptr<float>(), hy.Ptr<float>(), n, c, l, hw != null ? hw.Ptr<float>() : null, hb != null ? hb.Ptr<float>() : null,
            hm.Ptr<float>(), hr.Ptr<float>(), batchStats, eps);
    }

    public void BatchNormBackward(Tensor x, Tensor g, Tensor? dx, Tensor? dweight, Tensor? dbias, int n, int c, int l, Tensor? weight, Tensor mean, Tensor rstd, bool batchStats)
    {
        Count("batch_norm_backward");
        using var hx = Host(x);
        using var hg = Host(g);
        using var hd = dx != null ? Host(dx) : null;
        using var hdw = dweight != null ? Host(dweight) : null;
        using var hdb = dbias != null ? Host(dbias) : null;
        using var hw = weight != null ? Host(weight) : null;
        using var hm = Host(mean);
        using var hr = Host(rstd);
        BatchNormKernels.Backward(hx.Ptr<float>(), hg.Ptr<float>(), hd != null ? hd.Ptr<float>() : null, hdw != null ? hdw.Ptr<float>() : null,
            hdb != null ? hdb.Ptr<float>() : null, n, c, l, hw != null ? hw.Ptr<float>() : null, hm.Ptr<float>(), hr.Ptr<float>(), batchStats);
    }

    public void AvgPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Count("avgpool");
        using var hx = Host(x);
        using var hy = Host(y);
        PoolKernels.Avg(hx.Ptr<float>(), hy.Ptr<float>(), planes, geo, countIncludePad, backward: false);
    }

    public void AvgPoolBackward(Tensor gy, Tensor dx, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Count("avgpool_backward");
        using var hg = Host(gy);
        using var hd = Host(dx);
        PoolKernels.Avg(hd.Ptr<float>(), hg.Ptr<float>(), planes, geo, countIncludePad, backward: true);
    }

    public void EncodeMessage(MessageFormat format, Tensor v, Tensor scale, Tensor msg, ulong seed, ulong start)
    {
        Count("encode_message");
        using var hv = Host(v);
        using var hs = Host(scale);
        using var hm = Host(msg);
        var values = hv.Span<float>();
        float s = hs.Span<float>()[0];
        var bytes = hm.Span<byte>();
        System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes, s);
        for (int i = 0; i < values.Length; i++)
        {
            if (format == MessageFormat.Sign)
            {
                if (i % 8 == 0) bytes[4 + i / 8] = 0;
                if (values[i] >= 0) bytes[4 + i / 8] |= (byte)(1 << (i % 8));
                continue;
            }
            if (s == 0) { bytes[4 + i] = 0; continue; }
            double x = values[i] / s * 127;
            double lo = Math.Floor(x);
            double u = Philox.ToUniformDouble(Philox.At(seed, start + (ulong)(i >> 2), i & 3));
            int q = (int)(u < x - lo ? lo + 1 : lo);
            bytes[4 + i] = unchecked((byte)(sbyte)Math.Clamp(q, -127, 127));
        }
    }

    public void DecodeAddMessage(MessageFormat format, Tensor msg, Tensor sum)
    {
        Count("decode_message");
        using var hm = Host(msg);
        using var hs = Host(sum);
        var bytes = hm.Span<byte>();
        var total = hs.Span<float>();
        float s = System.Buffers.Binary.BinaryPrimitives.ReadSingleLittleEndian(bytes);
        for (int i = 0; i < total.Length; i++)
            total[i] += format == MessageFormat.Sign ? ((bytes[4 + i / 8] & (1 << (i % 8))) != 0 ? s : -s) : (sbyte)bytes[4 + i] * s / 127f;
    }
}
