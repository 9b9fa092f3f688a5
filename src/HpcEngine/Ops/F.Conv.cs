using HpcEngine.Autograd;
using HpcEngine.Backends.Cpu;

namespace HpcEngine;

public static partial class F
{
    /// <summary>2-D convolution (cross-correlation, as PyTorch): input [N, C, H, W], weight [O, C/groups, KH, KW],
    /// bias [O]. Lowered per group to im2col over the whole batch + one GEMM; backward is one GEMM for the weight
    /// gradient and one plus a fold (col2im) for the input gradient.</summary>
    public static unsafe Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias = null, int stride = 1, int padding = 0, int dilation = 1, int groups = 1) =>
        Conv2d(input, weight, bias, (stride, stride), (padding, padding), (dilation, dilation), groups);

    /// <summary>2-D convolution with per-axis stride, padding and dilation.</summary>
    public static unsafe Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, (int H, int W) stride, (int H, int W) padding, (int H, int W) dilation, int groups = 1)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        if (input.Rank != 4 || weight.Rank != 4)
            throw ShapeMismatchException.For("conv2d", "input must be [N, C, H, W] and weight [O, C/groups, KH, KW]", input, weight);
        if (input.DType != weight.DType) throw new DTypeMismatchException($"conv2d: input is {input.DType.TorchName()} but weight is {weight.DType.TorchName()}");
        if (groups < 1) throw new ArgumentOutOfRangeException(nameof(groups), $"conv2d: groups must be positive, got {groups}");
        if (stride.H < 1 || stride.W < 1 || dilation.H < 1 || dilation.W < 1 || padding.H < 0 || padding.W < 0)
            throw new ArgumentOutOfRangeException(nameof(stride), $"conv2d: stride and dilation must be positive and padding non-negative (stride {stride}, padding {padding}, dilation {dilation})");
        int n = input.Shape[0], c = input.Shape[1], h = input.Shape[2], w = input.Shape[3];
        int o = weight.Shape[0], cg = weight.Shape[1], kh = weight.Shape[2], kw = weight.Shape[3];
        if (c % groups != 0 || o % groups != 0 || cg != c / groups)
            throw ShapeMismatchException.For("conv2d", $"channels must split evenly into {groups} groups: weight dim 1 must be C/groups", input, weight);
        if (bias != null && (bias.Rank != 1 || bias.Shape[0] != o))
            throw ShapeMismatchException.For("conv2d", $"bias must be [{o}]", weight, bias);
        var geo = new Conv2dGeometry(cg, h, w, kh, kw, stride.H, stride.W, padding.H, padding.W, dilation.H, dilation.W);
        int oh = geo.OH, ow = geo.OW;
        if (oh <= 0 || ow <= 0)
            throw ShapeMismatchException.For("conv2d", $"the kernel (with dilation and padding) is larger than the input: output would be {oh}x{ow}", input, weight);
        var compute = input.DType.ComputeType();
        using var xc = Ops.ToDType(input, compute, false).ContiguousOwned();
        using var wc = Ops.ToDType(weight, compute, false).ContiguousOwned();
        int og = o / groups, ck = cg * kh * kw, l = oh * ow, nl = n * l;
        var device = xc.Device;
        Ops.SameDevice("conv2d", input, weight);
        // The whole batch is unfolded into one [C/g·KH·KW, N·OH·OW] matrix per group, so each group is one large
        // GEMM (per-image GEMMs were small and slow: conv1 of the Fashion-MNIST cnn has K = 9).
        var yg = Tensor.Empty([groups, og, nl], compute, device);
        using (var cols = Tensor.Empty([ck, nl], compute, device))
        {
            for (int gi = 0; gi < groups; gi++)
            {
                Im2ColBatch(xc, gi, cg, geo, cols);
                using var wg = wc.View([og, ck], [ck, 1], gi * og * ck);
                using var yv = yg.View([og, nl], [nl, 1], gi * og * nl);
                Ops.Gemm2D(wg, cols, yv, accumulate: false);
            }
        }
        // [G, O/G, N, L] -> [N, G, O/G, L] = [N, O, OH, OW]
        Tensor y;
        using (yg)
        using (var perm = yg.View([n, groups, og, l], [l, og * nl, nl, 1], 0))
            y = perm.Clone();
        y = ReshapeOwned(y, [n, o, oh, ow]);
        if (bias != null)
        {
            using var b4 = Ops.Reshape(bias, 1, o, 1, 1);
            using var bc = Ops.ToDType(b4, compute, false);
            Ops.AddInto(y, bc); // broadcasts [1, O, 1, 1] over the output
        }
        if (compute != input.DType) y = y.Replace(Ops.ToDType(y, input.DType, false));
        var inputs = bias != null ? new[] { input, weight, bias } : new[] { input, weight };
        if (!Recorder.Needs(inputs)) return y;
        bool gx = input.NeedsGrad, gw = weight.NeedsGrad, gb = bias?.NeedsGrad ?? false;
        return Recorder.Record(y, "conv2d", inputs, [xc, wc], (g, s) =>
        {
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            // g [N, O, L] -> [G, O/G, N·L] so each group's output gradient is one matrix.
            using var gPerm = gc.View([groups, og, n, l], [og * l, l, o * l, 1], gc.Offset);
            using var gt = gPerm.Clone();
            var dx = gx ? Tensor.Empty([n, c, h, w], compute, device, zeroed: true) : null;
            var dw = gw ? Tensor.Empty([o, cg, kh, kw], compute, device) : null;
            using var cols = Tensor.Empty([ck, nl], compute, device);
            for (int gi = 0; gi < groups; gi++)
            {
                using var gy = gt.View([og, nl], [nl, 1], gi * og * nl);
                if (dw != null)
                {
                    Im2ColBatch(s[0], gi, cg, geo, cols);
                    using var dwg = dw.View([og, ck], [ck, 1], gi * og * ck);
                    using var colsT = cols.View([nl, ck], [1, nl], 0);
                    Ops.Gemm2D(gy, colsT, dwg, accumulate: false);
                }
                if (dx != null)
                {
                    using var wgT = s[1].View([ck, og], [1, ck], s[1].Offset + gi * og * ck);
                    Ops.Gemm2D(wgT, gy, cols, accumulate: false);
                    Col2ImBatch(cols, dx, gi, cg, geo);
                }
            }
            Tensor? db = gb ? Ops.Sum(gc, [0, 2, 3]) : null;
            var r = new List<Tensor?> { dx, dw };
            if (bias != null) r.Add(db);
            return [.. r];
        });
    }

    private static Tensor ReshapeOwned(Tensor t, int[] shape) => t.Replace(Ops.Reshape(t, shape));

    /// <summary>Unfolds group <paramref name="gi"/> of every image into cols [C/g·KH·KW, N·L] (image b in columns b·L..).</summary>
    private static unsafe void Im2ColBatch(Tensor x, int gi, int cg, Conv2dGeometry geo, Tensor cols)
    {
        if (!x.IsCpu)
        {
            Backends.DeviceBackends.For(x.Device).Im2Col(x, gi, cg, geo, cols);
            return;
        }
        int n = x.Shape[0], l = geo.OH * geo.OW, nl = n * l, rows = cg * geo.KH * geo.KW;
        CpuThreads.For(n, (long)n * rows * l, (b0, b1) =>
        {
            for (int b = b0; b < b1; b++)
            {
                long off = ((long)b * x.Shape[1] + gi * cg) * geo.H * geo.W;
                if (x.DType == DType.Float32) ConvKernels.Im2Col(x.Ptr<float>() + off, geo, cols.Ptr<float>() + (long)b * l, nl);
                else ConvKernels.Im2Col(x.Ptr<double>() + off, geo, cols.Ptr<double>() + (long)b * l, nl);
            }
        });
    }

    /// <summary>Folds cols [C/g·KH·KW, N·L] back into group <paramref name="gi"/> of dx, summing overlaps.</summary>
    private static unsafe void Col2ImBatch(Tensor cols, Tensor dx, int gi, int cg, Conv2dGeometry geo)
    {
        if (!dx.IsCpu)
        {
            Backends.DeviceBackends.For(dx.Device).Col2Im(cols, gi, cg, geo, dx);
            return;
        }
        int n = dx.Shape[0], l = geo.OH * geo.OW, nl = n * l, rows = cg * geo.KH * geo.KW;
        CpuThreads.For(n, (long)n * rows * l, (b0, b1) =>
        {
            for (int b = b0; b < b1; b++)
            {
                long off = ((long)b * dx.Shape[1] + gi * cg) * geo.H * geo.W;
                if (dx.DType == DType.Float32) ConvKernels.Col2Im(cols.Ptr<float>() + (long)b * l, geo, dx.Ptr<float>() + off, nl);
                else ConvKernels.Col2Im(cols.Ptr<double>() + (long)b * l, geo, dx.Ptr<double>() + off, nl);
            }
        });
    }

    /// <summary>Embedding lookup on a device: the ids (moved there as int64 if they are not) are checked in range on
    /// the host first — eagerly; under graph capture nothing is read back and the kernel skips an out-of-range id
    /// (its row stays unwritten) rather than read out of bounds — then one gather kernel; the backward scatters the
    /// gradient rows into a zeroed table gradient.</summary>
    private static Tensor DeviceEmbedding(Tensor indices, Tensor weight)
    {
        if (indices.DType is not (DType.Int64 or DType.Int32))
            throw new DTypeMismatchException($"embedding: indices must be int64 or int32, got {indices.DType.TorchName()}");
        int vocab = weight.Shape[0], dim = weight.Shape[1];
        var backend = Backends.DeviceBackends.For(weight.Device);
        if (!backend.Capturing)
            foreach (long i in indices.ToArray<long>())
                if (i < 0 || i >= vocab) throw new IndexOutOfRangeException($"embedding: index {i} is out of range for {vocab} embeddings");
        using var flat = Ops.Reshape(indices, [-1]);
        using var flat64 = Ops.ToDType(flat, DType.Int64, false);
        using var idsDev = flat64.Device == weight.Device ? Ops.ContiguousNoGrad(flat64) : Ops.MoveNoGrad(flat64, weight.Device);
        using var wc = weight.Contiguous();
        var rows = Tensor.Empty([flat.NumEl, dim], weight.DType, weight.Device);
        backend.Embedding(wc, idsDev, rows);
        var r = rows.Replace(Ops.Reshape(rows, [.. indices.ShapeArray, dim]));
        if (!Recorder.Needs(weight)) return r;
        return Recorder.Record(r, "embedding", [weight], [idsDev], (g, s) =>
        {
            using var gc = Ops.Reshape(g, [-1, dim]).ContiguousOwned();
            var dw = Tensor.Empty([vocab, dim], g.DType, g.Device, zeroed: true);
            backend.EmbeddingBackward(gc, s[0], dw);
            return [dw];
        });
    }

    /// <summary>2-D max pooling over [N, C, H, W]; the stride defaults to the kernel size.</summary>
    public static unsafe Tensor MaxPool2d(Tensor x, int kernelSize, int? stride = null, int padding = 0, int dilation = 1)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (planes, geo, compute, xc) = PoolSetup("max_pool2d", x, kernelSize, stride ?? kernelSize, padding, dilation);
        using var _ = xc;
        if (padding * 2 > kernelSize) throw new ArgumentException($"max_pool2d: padding ({padding}) must be at most half the kernel size ({kernelSize})", nameof(padding));
        var y = Tensor.Empty([x.Shape[0], x.Shape[1], geo.OH, geo.OW], compute, x.Device);
        if (!x.IsCpu) return DeviceMaxPool(x, xc, y, planes, geo);
        var arg = Tensor.Empty(y.Shape, DType.Int64);
        if (compute == DType.Float32) PoolKernels.MaxForward(xc.Ptr<float>(), y.Ptr<float>(), arg.Ptr<long>(), planes, geo);
        else PoolKernels.MaxForward(xc.Ptr<double>(), y.Ptr<double>(), arg.Ptr<long>(), planes, geo);
        if (compute != x.DType) y = y.Replace(Ops.ToDType(y, x.DType, false));
        if (!Recorder.Needs(x)) { arg.Dispose(); return y; }
        var inShape = x.ShapeArray;
        Recorder.Record(y, "max_pool2d", [x], [arg], (g, s) =>
        {
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dx = Tensor.Zeros(inShape, compute);
            if (compute == DType.Float32) PoolKernels.MaxBackward(gc.Ptr<float>(), s[0].Ptr<long>(), dx.Ptr<float>(), planes, geo);
            else PoolKernels.MaxBackward(gc.Ptr<double>(), s[0].Ptr<long>(), dx.Ptr<double>(), planes, geo);
            return [dx];
        });
        arg.Dispose();
        return y;
    }

    private static Tensor DeviceMaxPool(Tensor x, Tensor xc, Tensor y, int planes, Conv2dGeometry geo)
    {
        var backend = Backends.DeviceBackends.For(x.Device);
        var indices = backend.MaxPool(xc, y, planes, geo);
        if (!Recorder.Needs(x))
        {
            indices.Dispose();
            return y;
        }
        var inShape = x.ShapeArray;
        Recorder.Record(y, "max_pool2d", [x], [indices], (g, s) =>
        {
            using var gc = g.Contiguous();
            var dx = Tensor.Empty(inShape, gc.DType, gc.Device, zeroed: true);
            backend.MaxPoolBackward(gc, s[0], dx, planes, geo);
            return [dx];
        });
        indices.Dispose();
        return y;
    }

    /// <summary>2-D average pooling over [N, C, H, W]; the stride defaults to the kernel size.</summary>
    public static unsafe Tensor AvgPool2d(Tensor x, int kernelSize, int? stride = null, int padding = 0, bool countIncludePad = true)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (planes, geo, compute, xc) = PoolSetup("avg_pool2d", x, kernelSize, stride ?? kernelSize, padding, 1);
        using var _ = xc;
        if (padding * 2 > kernelSize) throw new ArgumentException($"avg_pool2d: padding ({padding}) must be at most half the kernel size ({kernelSize})", nameof(padding));
        if (!x.IsCpu) return DeviceAvgPool(x, xc, planes, geo, countIncludePad);
        var y = Tensor.Empty([x.Shape[0], x.Shape[1], geo.OH, geo.OW], compute);
        if (compute == DType.Float32) PoolKernels.Avg(xc.Ptr<float>(), y.Ptr<float>(), planes, geo, countIncludePad, backward: false);
        else PoolKernels.Avg(xc.Ptr<double>(), y.Ptr<double>(), planes, geo, countIncludePad, backward: false);
        if (compute != x.DType) y = y.Replace(Ops.ToDType(y, x.DType, false));
        if (!Recorder.Needs(x)) return y;
        var inShape = x.ShapeArray;
        return Recorder.Record(y, "avg_pool2d", [x], g =>
        {
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dx = Tensor.Zeros(inShape, compute);
            if (compute == DType.Float32) PoolKernels.Avg(dx.Ptr<float>(), gc.Ptr<float>(), planes, geo, countIncludePad, backward: true);
            else PoolKernels.Avg(dx.Ptr<double>(), gc.Ptr<double>(), planes, geo, countIncludePad, backward: true);
            return [dx];
        });
    }

    private static Tensor DeviceAvgPool(Tensor x, Tensor xc, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        var backend = Backends.DeviceBackends.For(x.Device);
        var y = Tensor.Empty([x.Shape[0], x.Shape[1], geo.OH, geo.OW], xc.DType, x.Device);
        backend.AvgPool(xc, y, planes, geo, countIncludePad);
        if (!Recorder.Needs(x)) return y;
        var inShape = x.ShapeArray;
        return Recorder.Record(y, "avg_pool2d", [x], g =>
        {
            using var gc = Ops.ContiguousNoGrad(g);
            var dx = Tensor.Empty(inShape, gc.DType, gc.Device, zeroed: true);
            backend.AvgPoolBackward(gc, dx, planes, geo, countIncludePad);
            return [dx];
        });
    }

    private static (int Planes, Conv2dGeometry Geo, DType Compute, Tensor Xc) PoolSetup(string op, Tensor x, int k, int stride, int padding, int dilation)
    {
        if (x.Rank != 4) throw new ShapeMismatchException($"{op}: input must be [N, C, H, W], got {Shapes.Format(x.Shape)}");
        if (!x.DType.IsFloating()) throw Ops.Unsupported(op, x.DType, "a floating dtype");
        if (k < 1 || stride < 1 || dilation < 1 || padding < 0)
            throw new ArgumentOutOfRangeException(nameof(k), $"{op}: kernel, stride and dilation must be positive and padding non-negative");
        var geo = new Conv2dGeometry(x.Shape[1], x.Shape[2], x.Shape[3], k, k, stride, stride, padding, padding, dilation, dilation);
        if (geo.OH <= 0 || geo.OW <= 0)
            throw new ShapeMismatchException($"{op}: kernel {k} is larger than the padded input {Shapes.Format(x.Shape)}");
        var compute = x.DType.ComputeType();
        return (x.Shape[0] * x.Shape[1], geo, compute, Ops.ToDType(x, compute, false).ContiguousOwned());
    }

    /// <summary>Rows of <paramref name="weight"/> [V, D] picked by integer <paramref name="indices"/>: shape indices.shape + [D].</summary>
    public static Tensor Embedding(Tensor indices, Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Rank != 2) throw new ShapeMismatchException($"embedding: the weight must be [num_embeddings, dim], got {Shapes.Format(weight.Shape)}");
        if (!weight.IsCpu) return DeviceEmbedding(indices, weight);
        using var flat = Ops.Reshape(indices, -1);
        using var rows = Ops.IndexSelect(weight, 0, flat);
        return Ops.Reshape(rows, [.. indices.ShapeArray, weight.Shape[1]]);
    }

    /// <summary>softmax(q·kᵀ/√d + mask)·v over [..., L, d] inputs; <paramref name="isCausal"/> hides future positions.
    /// <paramref name="attnMask"/> is added to the scores (bool masks: false = hidden).</summary>
    public static Tensor ScaledDotProductAttention(Tensor q, Tensor k, Tensor v, Tensor? attnMask = null, bool isCausal = false, double? scale = null)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        if (q.Rank < 2 || q.Shape[^1] != k.Shape[^1] || k.Shape[^2] != v.Shape[^2])
            throw ShapeMismatchException.For("scaled_dot_product_attention", "q [..., L, E], k [..., S, E], v [..., S, Ev] are expected", q, k, v);
        double sc = scale ?? 1.0 / Math.Sqrt(q.Shape[^1]);
        using var kt = Ops.Transpose(k, -2, -1);
        using var raw = Ops.MatMul(q, kt);
        var scores = Ops.MulScalar(raw, sc);
        int lq = q.Shape[^2], lk = k.Shape[^2];
        if (isCausal && !q.IsCpu)
        {
            // On a device: add a 0 / −∞ mask built on the host (the comparison and masked fill have no device path).
            var m = new float[lq * lk];
            for (int i = 0; i < lq; i++)
                for (int j = i + 1; j < lk; j++) m[i * lk + j] = float.NegativeInfinity;
            using var mh = Tensor.FromArray(m, lq, lk);
            using var md = Ops.MoveNoGrad(mh, q.Device);
            using var mt = Ops.ToDType(md, scores.DType, false);
            scores = scores.Replace(Ops.Add(scores, mt));
        }
        else if (isCausal)
        {
            using var rowsIdx = Tensor.Arange(lq);
            using var colsIdx = Tensor.Arange(lk);
            using var r2 = Ops.Unsqueeze(rowsIdx, 1);
            using var future = Ops.Gt(colsIdx, r2);
            scores = scores.Replace(Ops.MaskedFill(scores, future, double.NegativeInfinity));
        }
        if (attnMask != null)
        {
            if (attnMask.DType == DType.Bool)
            {
                using var hidden = Ops.LogicalNot(attnMask);
                scores = scores.Replace(Ops.MaskedFill(scores, hidden, double.NegativeInfinity));
            }
            else scores = scores.Replace(Ops.Add(scores, attnMask));
        }
        using (scores)
        using (var attn = Softmax(scores, -1))
            return Ops.MatMul(attn, v);
    }
}
