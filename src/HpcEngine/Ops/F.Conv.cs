using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine;

public static partial class F
{
    /// <summary>2-D convolution (cross-correlation, as PyTorch): input [N, C, H, W], weight [O, C/groups, KH, KW],
    /// bias [O]. The backend's whole-batch kernel where it has one (the CPU's splits the batch over threads, see
    /// ImageConv); otherwise lowered per group to im2col a chunk of images at a time + one GEMM per chunk, and
    /// backward to a GEMM per chunk for the weight gradient and one plus a fold (col2im) for the input gradient.</summary>
    public static Tensor Conv2d(
        Tensor input,
        Tensor weight,
        Tensor? bias = null,
        int stride = 1,
        int padding = 0,
        int dilation = 1,
        int groups = 1
    ) => Conv2d(input, weight, bias, (stride, stride), (padding, padding), (dilation, dilation), groups);

    /// <summary>2-D convolution with per-axis stride, padding and dilation.</summary>
    public static Tensor Conv2d(
        Tensor input,
        Tensor weight,
        Tensor? bias,
        (int H, int W) stride,
        (int H, int W) padding,
        (int H, int W) dilation,
        int groups = 1
    )
    {
        CheckConvArgs("conv2d", "[O, C/groups, KH, KW]", input, weight, groups, stride, padding, dilation);
        int n = input.Shape[0],
            c = input.Shape[1],
            h = input.Shape[2],
            w = input.Shape[3];
        int o = weight.Shape[0],
            cg = weight.Shape[1],
            kh = weight.Shape[2],
            kw = weight.Shape[3];
        if (c % groups != 0 || o % groups != 0 || cg != c / groups)
            throw ShapeMismatchException.For(
                "conv2d",
                $"channels must split evenly into {groups} groups: weight dim 1 must be C/groups",
                input,
                weight
            );
        if (bias != null && (bias.Rank != 1 || bias.Shape[0] != o))
            throw ShapeMismatchException.For("conv2d", $"bias must be [{o}]", weight, bias);
        var geo = Geometry(cg, h, w, (kh, kw), stride, padding, dilation);
        int oh = geo.OH,
            ow = geo.OW;
        if (oh <= 0 || ow <= 0)
            throw ShapeMismatchException.For(
                "conv2d",
                $"the kernel (with dilation and padding) is larger than the input: output would be {oh}x{ow}",
                input,
                weight
            );
        var compute = input.DType.ComputeType();
        using var xc = Ops.ToDType(input, compute, false).ContiguousOwned();
        using var wc = Ops.ToDType(weight, compute, false).ContiguousOwned();
        var device = xc.Device;
        Ops.SameDevice("conv2d", input, weight);
        Tensor y = Tensor.Empty([n, o, oh, ow], compute, device);
        bool fused;
        using (var biasC = bias != null ? Ops.ToDType(bias, compute, false).ContiguousOwned() : null)
            fused = xc.Backend.TryConv2d(xc, wc, biasC, y, groups, geo);
        if (!fused)
        {
            y.Dispose();
            y = LoweredConv2d(xc, wc, bias, groups, geo);
        }
        if (compute != input.DType)
            y = y.Replace(Ops.ToDType(y, input.DType, false));
        var inputs = bias != null ? new[] { input, weight, bias } : new[] { input, weight };
        if (!Recorder.Needs(inputs))
            return y;
        bool gx = input.NeedsGrad,
            gw = weight.NeedsGrad,
            gb = bias?.NeedsGrad ?? false;
        return Recorder.Record(y, "conv2d", inputs, [xc, wc], (g, s) =>
        {
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dx = gx ? Tensor.Empty([n, c, h, w], compute, device, zeroed: true) : null;
            var dw = gw ? Tensor.Empty([o, cg, kh, kw], compute, device) : null;
            if (!s[0].Backend.TryConv2dBackward(s[0], s[1], gc, dx, dw, groups, geo))
                LoweredConv2dBackward(s[0], s[1], gc, dx, dw, groups, geo);
            Tensor? db = gb ? Ops.Sum(gc, [0, 2, 3]) : null;
            var r = new List<Tensor?> { dx, dw };
            if (bias != null)
                r.Add(db);
            return [.. r];
        });
    }

    /// <summary>Convolution above the primitives, for backends without a whole-batch kernel: images are unfolded a
    /// chunk at a time into one [C/g·KH·KW, chunk·OH·OW] matrix per group, each chunk one GEMM — large enough to be
    /// one efficient GEMM (per-image GEMMs were small and slow: conv1 of the Fashion-MNIST cnn has K = 9), small
    /// enough that the unfolded matrix is still in cache when the GEMM packs it.</summary>
    private static Tensor LoweredConv2d(Tensor xc, Tensor wc, Tensor? bias, int groups, Conv2dGeometry geo)
    {
        int n = xc.Shape[0],
            o = wc.Shape[0],
            og = o / groups,
            ck = geo.C * geo.KH * geo.KW,
            l = geo.OH * geo.OW,
            nl = n * l;
        var compute = xc.DType;
        var device = xc.Device;
        int chunk = ImagesPerChunk(n, ck, l, compute, device);
        var yg = Tensor.Empty([groups, og, nl], compute, device);
        using (var cols = Tensor.Empty([ck, chunk * l], compute, device))
        {
            for (int gi = 0; gi < groups; gi++)
            {
                using var wg = wc.View([og, ck], [ck, 1], gi * og * ck);
                for (int n0 = 0; n0 < n; n0 += chunk)
                {
                    int bc = Math.Min(chunk, n - n0);
                    using var xs = xc.Narrow(0, n0, bc);
                    using var cv = cols.View([ck, bc * l], [bc * l, 1], 0);
                    Im2ColBatch(xs, gi, geo.C, geo, cv);
                    using var yv = yg.View([og, bc * l], [nl, 1], gi * og * nl + n0 * l);
                    Ops.Gemm2D(wg, cv, yv, accumulate: false);
                }
            }
        }
        // [G, O/G, N, L] -> [N, G, O/G, L] = [N, O, OH, OW]
        Tensor y;
        using (yg)
        using (var perm = yg.View([n, groups, og, l], [l, og * nl, nl, 1], 0))
            y = perm.Clone();
        y = ReshapeOwned(y, [n, o, geo.OH, geo.OW]);
        if (bias != null)
        {
            using var b4 = Ops.Reshape(bias, 1, o, 1, 1);
            using var bc = Ops.ToDType(b4, compute, false);
            Ops.AddInto(y, bc); // broadcasts [1, O, 1, 1] over the output
        }
        return y;
    }

    /// <summary>The backward of <see cref="LoweredConv2d"/>: per group and chunk a GEMM for the weight gradient and
    /// one plus a fold (col2im) for the input gradient (dx zeroed by the caller).</summary>
    private static void LoweredConv2dBackward(
        Tensor xc,
        Tensor wc,
        Tensor gc,
        Tensor? dx,
        Tensor? dw,
        int groups,
        Conv2dGeometry geo
    )
    {
        int n = xc.Shape[0],
            o = wc.Shape[0],
            og = o / groups,
            ck = geo.C * geo.KH * geo.KW,
            l = geo.OH * geo.OW,
            nl = n * l;
        var compute = xc.DType;
        var device = xc.Device;
        int chunk = ImagesPerChunk(n, ck, l, compute, device);
        // g [N, O, L] -> [G, O/G, N·L] so each group's output gradient is one matrix.
        using var gPerm = gc.View([groups, og, n, l], [og * l, l, o * l, 1], gc.Offset);
        using var gt = gPerm.Clone();
        using var cols = Tensor.Empty([ck, chunk * l], compute, device);
        for (int gi = 0; gi < groups; gi++)
        for (int n0 = 0; n0 < n; n0 += chunk)
        {
            // The same chunks as the forward: dw sums over them, dx is folded back a chunk at a time.
            int bc = Math.Min(chunk, n - n0);
            using var gy = gt.View([og, bc * l], [nl, 1], gt.Offset + gi * og * nl + n0 * l);
            using var cv = cols.View([ck, bc * l], [bc * l, 1], 0);
            if (dw != null)
            {
                using var xs = xc.Narrow(0, n0, bc);
                Im2ColBatch(xs, gi, geo.C, geo, cv);
                using var dwg = dw.View([og, ck], [ck, 1], gi * og * ck);
                using var colsT = cols.View([bc * l, ck], [1, bc * l], 0);
                Ops.Gemm2D(gy, colsT, dwg, accumulate: n0 > 0);
            }
            if (dx != null)
            {
                using var wgT = wc.View([ck, og], [1, ck], wc.Offset + gi * og * ck);
                Ops.Gemm2D(wgT, gy, cv, accumulate: false);
                using var dxs = dx.Narrow(0, n0, bc);
                Col2ImBatch(cv, dxs, gi, geo.C, geo);
            }
        }
    }

    private static Tensor ReshapeOwned(Tensor t, int[] shape) => t.Replace(Ops.Reshape(t, shape));

    /// <summary>The checks conv2d and conv_transpose2d share: 4-d operands of one dtype, positive groups, stride and
    /// dilation, non-negative padding.</summary>
    private static void CheckConvArgs(
        string op,
        string weightShape,
        Tensor input,
        Tensor weight,
        int groups,
        (int H, int W) stride,
        (int H, int W) padding,
        (int H, int W) dilation
    )
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        if (input.Rank != 4 || weight.Rank != 4)
            throw ShapeMismatchException.For(op, $"input must be [N, C, H, W] and weight {weightShape}", input, weight);
        if (input.DType != weight.DType)
            throw new DTypeMismatchException(
                $"{op}: input is {input.DType.TorchName()} but weight is {weight.DType.TorchName()}"
            );
        if (groups < 1)
            throw new ArgumentOutOfRangeException(nameof(groups), $"{op}: groups must be positive, got {groups}");
        if (stride.H < 1 || stride.W < 1 || dilation.H < 1 || dilation.W < 1 || padding.H < 0 || padding.W < 0)
            throw new ArgumentOutOfRangeException(
                nameof(stride),
                $"{op}: stride and dilation must be positive and padding non-negative (stride {stride}, padding "
                    + $"{padding}, dilation {dilation})"
            );
    }

    /// <summary>The window geometry of channels-per-group <paramref name="c"/> over an <paramref name="h"/> ×
    /// <paramref name="w"/> image.</summary>
    private static Conv2dGeometry Geometry(
        int c,
        int h,
        int w,
        (int H, int W) kernel,
        (int H, int W) stride,
        (int H, int W) padding,
        (int H, int W) dilation
    ) => new(c, h, w, kernel.H, kernel.W, stride.H, stride.W, padding.H, padding.W, dilation.H, dilation.W);

    /// <summary>Bytes of unfolded input per chunk on the CPU: about what a core's L2 holds beside the GEMM's packed
    /// panels.</summary>
    private const long ColsChunkBytes = 2 << 20;

    /// <summary>Images per unfolded chunk: the CPU takes as many as fit <see cref="ColsChunkBytes"/> (at least one); a
    /// device, whose GEMMs want to be large and whose memory is fast, the whole batch.</summary>
    private static int ImagesPerChunk(int n, int ck, int l, DType dtype, Device device)
    {
        if (device.Type != DeviceType.Cpu || n == 0)
            return Math.Max(n, 1);
        long perImage = (long)ck * l * dtype.SizeOf();
        return (int)Math.Clamp(ColsChunkBytes / Math.Max(perImage, 1), 1, n);
    }

    /// <summary>Unfolds group <paramref name="gi"/> of every image into cols [C/g·KH·KW, N·L] (image b in columns
    /// b·L..).</summary>
    private static void Im2ColBatch(Tensor x, int gi, int cg, Conv2dGeometry geo, Tensor cols) =>
        x.Backend.Im2Col(x, gi, cg, geo, cols);

    /// <summary>Folds cols [C/g·KH·KW, N·L] back into group <paramref name="gi"/> of dx, summing overlaps.</summary>
    private static void Col2ImBatch(Tensor cols, Tensor dx, int gi, int cg, Conv2dGeometry geo) =>
        dx.Backend.Col2Im(cols, gi, cg, geo, dx);

    /// <summary>Embedding lookup: the ids (moved to the weight's device as int64 if they are not) are checked in range
    /// on the host first — eagerly; under graph capture nothing is read back and the kernel skips an out-of-range id
    /// (its row stays unwritten) rather than read out of bounds — then one gather kernel; the backward scatters the
    /// gradient rows into a zeroed table gradient.</summary>
    private static Tensor EmbeddingLookup(Tensor indices, Tensor weight)
    {
        if (indices.DType is not (DType.Int64 or DType.Int32))
            throw new DTypeMismatchException(
                $"embedding: indices must be int64 or int32, got {indices.DType.TorchName()}"
            );
        int vocab = weight.Shape[0],
            dim = weight.Shape[1];
        var backend = weight.Backend;
        if (!backend.Capturing)
            foreach (long i in indices.ToArray<long>())
                if (i < 0 || i >= vocab)
                    throw new IndexOutOfRangeException($"embedding: index {i} is out of range for {vocab} embeddings");
        using var flat = Ops.Reshape(indices, [-1]);
        using var flat64 = Ops.ToDType(flat, DType.Int64, false);
        using var idsDev =
            flat64.Device == weight.Device ? Ops.ContiguousNoGrad(flat64) : Ops.MoveNoGrad(flat64, weight.Device);
        using var wc = weight.Contiguous();
        var rows = Tensor.Empty([flat.NumEl, dim], weight.DType, weight.Device);
        backend.Embedding(wc, idsDev, rows);
        var r = rows.Replace(Ops.Reshape(rows, [.. indices.ShapeArray, dim]));
        if (!Recorder.Needs(weight))
            return r;
        return Recorder.Record(r, "embedding", [weight], [idsDev], (g, s) =>
        {
            using var gc = Ops.Reshape(g, [-1, dim]).ContiguousOwned();
            var dw = Tensor.Empty([vocab, dim], g.DType, g.Device, zeroed: true);
            backend.EmbeddingBackward(gc, s[0], dw);
            return [dw];
        });
    }

    /// <summary>Rows of <paramref name="weight"/> [V, D] picked by integer <paramref name="indices"/>: shape
    /// indices.shape + [D].</summary>
    public static Tensor Embedding(Tensor indices, Tensor weight)
    {
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Rank != 2)
            throw new ShapeMismatchException(
                $"embedding: the weight must be [num_embeddings, dim], got {Shapes.Format(weight.Shape)}"
            );
        return EmbeddingLookup(indices, weight);
    }

    /// <summary>softmax(q·kᵀ/√d + mask)·v over [..., L, d] inputs; <paramref name="isCausal"/> hides future positions.
    /// <paramref name="attnMask"/> is added to the scores (bool masks: false = hidden).</summary>
    public static Tensor ScaledDotProductAttention(
        Tensor q,
        Tensor k,
        Tensor v,
        Tensor? attnMask = null,
        bool isCausal = false,
        double? scale = null
    )
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        if (q.Rank < 2 || q.Shape[^1] != k.Shape[^1] || k.Shape[^2] != v.Shape[^2])
            throw ShapeMismatchException.For(
                "scaled_dot_product_attention",
                "q [..., L, E], k [..., S, E], v [..., S, Ev] are expected",
                q,
                k,
                v
            );
        double sc = scale ?? 1.0 / Math.Sqrt(q.Shape[^1]);
        using var kt = Ops.Transpose(k, -2, -1);
        using var raw = Ops.MatMul(q, kt);
        var scores = Ops.MulScalar(raw, sc);
        int lq = q.Shape[^2],
            lk = k.Shape[^2];
        if (isCausal)
        {
            // Position j is hidden from query i when j > i.
            using var rowsHost = Tensor.Arange(lq);
            using var colsHost = Tensor.Arange(lk);
            using var rowsIdx = Ops.MoveNoGrad(rowsHost, q.Device);
            using var colsIdx = Ops.MoveNoGrad(colsHost, q.Device);
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
            else
                scores = scores.Replace(Ops.Add(scores, attnMask));
        }
        using (scores)
        using (var attn = Softmax(scores, -1))
            return Ops.MatMul(attn, v);
    }
}
