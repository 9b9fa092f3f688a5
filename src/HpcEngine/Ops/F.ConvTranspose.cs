using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine;

public static partial class F
{
    /// <summary>2-D transposed convolution (PyTorch's conv_transpose2d, the gradient of conv2d with respect to its
    /// input): input [N, Cin, H, W], weight [Cin, Cout/groups, KH, KW], bias [Cout]; output height
    /// (H − 1)·stride − 2·padding + dilation·(KH − 1) + outputPadding + 1, likewise the width. Built from the
    /// convolution's own primitives, so it runs on every backend: per group and chunk of images one GEMM
    /// (weightᵀ · input) and a fold (col2im) into the output; backward unfolds the output gradient once per chunk for
    /// a GEMM to the input gradient (a convolution) and one to the weight gradient.</summary>
    public static Tensor ConvTranspose2d(
        Tensor input,
        Tensor weight,
        Tensor? bias = null,
        int stride = 1,
        int padding = 0,
        int outputPadding = 0,
        int groups = 1,
        int dilation = 1
    ) =>
        ConvTranspose2d(
            input,
            weight,
            bias,
            (stride, stride),
            (padding, padding),
            (outputPadding, outputPadding),
            groups,
            (dilation, dilation)
        );

    /// <summary>2-D transposed convolution with per-axis stride, padding, output padding and dilation.</summary>
    public static Tensor ConvTranspose2d(
        Tensor input,
        Tensor weight,
        Tensor? bias,
        (int H, int W) stride,
        (int H, int W) padding,
        (int H, int W) outputPadding,
        int groups,
        (int H, int W) dilation
    )
    {
        CheckConvArgs("conv_transpose2d", "[C, Cout/groups, KH, KW]", input, weight, groups, stride, padding, dilation);
        // PyTorch's rule: the extra rows and columns must not reach a whole stride (or dilation) further.
        if (
            outputPadding.H < 0
            || outputPadding.W < 0
            || (outputPadding.H >= stride.H && outputPadding.H >= dilation.H)
            || (outputPadding.W >= stride.W && outputPadding.W >= dilation.W)
        )
            throw new ArgumentOutOfRangeException(
                nameof(outputPadding),
                $"conv_transpose2d: output padding {outputPadding} must be non-negative and smaller than either the "
                    + $"stride {stride} or the dilation {dilation}"
            );
        int cin = input.Shape[1],
            h = input.Shape[2],
            w = input.Shape[3];
        int coutG = weight.Shape[1],
            kh = weight.Shape[2],
            kw = weight.Shape[3];
        if (weight.Shape[0] != cin || cin % groups != 0)
            throw ShapeMismatchException.For(
                "conv_transpose2d",
                $"weight dim 0 must be the input's {cin} channels, which must split evenly into {groups} groups",
                input,
                weight
            );
        if (bias != null && (bias.Rank != 1 || bias.Shape[0] != coutG * groups))
            throw ShapeMismatchException.For("conv_transpose2d", $"bias must be [{coutG * groups}]", weight, bias);
        int ho = (h - 1) * stride.H - 2 * padding.H + dilation.H * (kh - 1) + outputPadding.H + 1,
            wo = (w - 1) * stride.W - 2 * padding.W + dilation.W * (kw - 1) + outputPadding.W + 1;
        if (ho <= 0 || wo <= 0)
            throw ShapeMismatchException.For(
                "conv_transpose2d",
                $"the padding removes the whole output: it would be {ho}x{wo}",
                input,
                weight
            );
        Ops.SameDevice("conv_transpose2d", input, weight);
        // The convolution whose input gradient this is: an image of [Cout, HO, WO] seen through the same window.
        var geo = Geometry(coutG, ho, wo, (kh, kw), stride, padding, dilation);
        // Output padding of a stride or more (allowed when below the dilation) gives that convolution more
        // positions than the input has: those see zeros.
        if (geo.OH == h && geo.OW == w)
            return ConvTransposeCore(input, weight, bias, groups, geo);
        using var padded = Pad(input, [0, geo.OW - w, 0, geo.OH - h]);
        return ConvTransposeCore(padded, weight, bias, groups, geo);
    }

    private static Tensor ConvTransposeCore(Tensor input, Tensor weight, Tensor? bias, int groups, Conv2dGeometry geo)
    {
        int n = input.Shape[0],
            cin = input.Shape[1],
            h = input.Shape[2],
            w = input.Shape[3];
        int coutG = geo.C,
            cout = coutG * groups,
            cinG = cin / groups,
            ck = coutG * geo.KH * geo.KW,
            l = h * w,
            nl = n * l;
        var compute = input.DType.ComputeType();
        var device = input.Device;
        using var xc = Ops.ToDType(input, compute, false).ContiguousOwned();
        using var wc = Ops.ToDType(weight, compute, false).ContiguousOwned();
        // x [N, Cin, L] -> [G, Cin/G, N·L], so each group's input is one matrix (its columns image after image).
        using var xPerm = xc.View([groups, cinG, n, l], [cinG * l, l, cin * l, 1], xc.Offset);
        using var xt = xPerm.Clone();
        int chunk = ImagesPerChunk(n, ck, l, compute, device);
        var y = Tensor.Empty([n, cout, geo.H, geo.W], compute, device, zeroed: true);
        using (var cols = Tensor.Empty([ck, chunk * l], compute, device))
            for (int gi = 0; gi < groups; gi++)
            {
                // weight rows of group gi, [Cin/G, Cout/G·KH·KW], transposed
                using var wgT = wc.View([ck, cinG], [1, ck], wc.Offset + gi * cinG * ck);
                for (int n0 = 0; n0 < n; n0 += chunk)
                {
                    int bc = Math.Min(chunk, n - n0);
                    using var xg = xt.View([cinG, bc * l], [nl, 1], xt.Offset + gi * cinG * nl + n0 * l);
                    using var cv = cols.View([ck, bc * l], [bc * l, 1], 0);
                    Ops.Gemm2D(wgT, xg, cv, accumulate: false);
                    using var ys = y.Narrow(0, n0, bc);
                    Col2ImBatch(cv, ys, gi, coutG, geo);
                }
            }
        if (bias != null)
        {
            using var b4 = Ops.Reshape(bias, 1, cout, 1, 1);
            using var bc = Ops.ToDType(b4, compute, false);
            Ops.AddInto(y, bc);
        }
        if (compute != input.DType)
            y = y.Replace(Ops.ToDType(y, input.DType, false));
        var inputs = bias != null ? new[] { input, weight, bias } : new[] { input, weight };
        if (!Recorder.Needs(inputs))
            return y;
        bool gx = input.NeedsGrad,
            gw = weight.NeedsGrad,
            gb = bias?.NeedsGrad ?? false;
        return Recorder.Record(y, "conv_transpose2d", inputs, [xt, wc], (g, s) =>
        {
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dxt = gx ? Tensor.Empty([groups, cinG, nl], compute, device) : null;
            var dw = gw ? Tensor.Empty([cin, coutG, geo.KH, geo.KW], compute, device) : null;
            if (dxt != null || dw != null)
            {
                using var cols = Tensor.Empty([ck, chunk * l], compute, device);
                for (int gi = 0; gi < groups; gi++)
                for (int n0 = 0; n0 < n; n0 += chunk)
                {
                    int bc = Math.Min(chunk, n - n0);
                    using var cv = cols.View([ck, bc * l], [bc * l, 1], 0);
                    using (var gs = gc.Narrow(0, n0, bc))
                        Im2ColBatch(gs, gi, coutG, geo, cv);
                    if (dxt != null)
                    {
                        // dx_g = W_g · unfold(g): the convolution of the output gradient
                        using var wg = s[1].View([cinG, ck], [ck, 1], s[1].Offset + gi * cinG * ck);
                        using var dxg = dxt.View([cinG, bc * l], [nl, 1], gi * cinG * nl + n0 * l);
                        Ops.Gemm2D(wg, cv, dxg, accumulate: false);
                    }
                    if (dw != null)
                    {
                        // dW_g += x_g · unfold(g)ᵀ over the chunks
                        using var xg = s[0].View([cinG, bc * l], [nl, 1], s[0].Offset + gi * cinG * nl + n0 * l);
                        using var colsT = cols.View([bc * l, ck], [1, bc * l], 0);
                        using var dwg = dw.View([cinG, ck], [ck, 1], gi * cinG * ck);
                        Ops.Gemm2D(xg, colsT, dwg, accumulate: n0 > 0);
                    }
                }
            }
            Tensor? dx = null;
            if (dxt != null)
            {
                // [G, Cin/G, N, L] -> [N, G, Cin/G, L] = [N, Cin, H, W]
                using (dxt)
                using (var perm = dxt.View([n, groups, cinG, l], [l, cinG * nl, nl, 1], 0))
                    dx = perm.Clone();
                dx = ReshapeOwned(dx, [n, cin, h, w]);
            }
            Tensor? db = gb ? Ops.Sum(gc, [0, 2, 3]) : null;
            var r = new List<Tensor?> { dx, dw };
            if (bias != null)
                r.Add(db);
            return [.. r];
        });
    }
}
