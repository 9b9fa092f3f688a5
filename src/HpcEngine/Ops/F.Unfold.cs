using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine;

public static partial class F
{
    /// <summary>PyTorch's F.unfold (im2col): the sliding blocks of input [N, C, H, W] as columns, [N, C·KH·KW, L]
    /// with L = OH·OW the block positions, rows ordered (channel, kernel row, kernel column). Its backward is
    /// fold; both run the convolution's unfold and fold primitives, so every backend has them.</summary>
    public static Tensor Unfold(Tensor input, int kernelSize, int dilation = 1, int padding = 0, int stride = 1) =>
        Unfold(input, (kernelSize, kernelSize), (dilation, dilation), (padding, padding), (stride, stride));

    /// <summary><see cref="Unfold(Tensor, int, int, int, int)"/> with per-axis kernel size, dilation, padding and
    /// stride.</summary>
    public static Tensor Unfold(
        Tensor input,
        (int H, int W) kernelSize,
        (int H, int W) dilation,
        (int H, int W) padding,
        (int H, int W) stride
    )
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank != 4)
            throw new ShapeMismatchException($"unfold: input must be [N, C, H, W], got {Shapes.Format(input.Shape)}");
        int n = input.Shape[0],
            c = input.Shape[1];
        var geo = BlockGeometry("unfold", c, input.Shape[2], input.Shape[3], kernelSize, dilation, padding, stride);
        int ck = c * geo.KH * geo.KW,
            l = geo.OH * geo.OW;
        if (geo.OH <= 0 || geo.OW <= 0)
            throw new ShapeMismatchException(
                $"unfold: the {geo.KH}x{geo.KW} block (dilation {geo.DH}x{geo.DW}) does not fit the padded "
                    + $"{geo.H}x{geo.W} input"
            );
        var compute = input.DType.ComputeType();
        using var xc = Ops.ToDType(input, compute, false).ContiguousOwned();
        var cols = Tensor.Empty([ck, n * l], compute, input.Device);
        if (n > 0)
            Im2ColBatch(xc, 0, c, geo, cols);
        // [C·K, N, L] -> [N, C·K, L]
        Tensor y;
        using (cols)
        using (var perm = cols.View([n, ck, l], [l, n * l, 1], 0))
            y = perm.Clone();
        if (compute != input.DType)
            y = y.Replace(Ops.ToDType(y, input.DType, false));
        if (!Recorder.Needs(input))
            return y;
        return Recorder.Record(y, "unfold", [input], [], (g, _) => [FoldCore(g, n, geo, compute)]);
    }

    /// <summary>PyTorch's F.fold (col2im), unfold's adjoint: columns [N, C·KH·KW, L] summed into
    /// [N, C, outputSize.H, outputSize.W], overlapping blocks adding up.</summary>
    public static Tensor Fold(
        Tensor input,
        (int H, int W) outputSize,
        int kernelSize,
        int dilation = 1,
        int padding = 0,
        int stride = 1
    ) => Fold(input, outputSize, (kernelSize, kernelSize), (dilation, dilation), (padding, padding), (stride, stride));

    /// <summary><see cref="Fold(Tensor, ValueTuple{int, int}, int, int, int, int)"/> with per-axis kernel size,
    /// dilation, padding and stride.</summary>
    public static Tensor Fold(
        Tensor input,
        (int H, int W) outputSize,
        (int H, int W) kernelSize,
        (int H, int W) dilation,
        (int H, int W) padding,
        (int H, int W) stride
    )
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank != 3)
            throw new ShapeMismatchException($"fold: input must be [N, C·KH·KW, L], got {Shapes.Format(input.Shape)}");
        int n = input.Shape[0],
            k = kernelSize.H * kernelSize.W;
        if (k <= 0 || input.Shape[1] % k != 0)
            throw new ShapeMismatchException(
                $"fold: dim 1 ({input.Shape[1]}) must be a multiple of the kernel's {kernelSize.H}x{kernelSize.W} positions"
            );
        var geo = BlockGeometry(
            "fold",
            input.Shape[1] / k,
            outputSize.H,
            outputSize.W,
            kernelSize,
            dilation,
            padding,
            stride
        );
        if (geo.OH <= 0 || geo.OW <= 0 || input.Shape[2] != geo.OH * geo.OW)
            throw new ShapeMismatchException(
                $"fold: {input.Shape[2]} blocks given, but a {outputSize.H}x{outputSize.W} output holds "
                    + $"{Math.Max(0, geo.OH)}x{Math.Max(0, geo.OW)} of these"
            );
        var compute = input.DType.ComputeType();
        var y = FoldCore(input, n, geo, compute);
        if (compute != input.DType)
            y = y.Replace(Ops.ToDType(y, input.DType, false));
        if (!Recorder.Needs(input))
            return y;
        return Recorder.Record(y, "fold", [input], [], (g, _) => [UnfoldCore(g, n, geo, compute)]);
    }

    /// <summary>Columns [N, C·K, L] folded into a zeroed [N, C, H, W] (no autograd).</summary>
    private static Tensor FoldCore(Tensor columns, int n, Conv2dGeometry geo, DType compute)
    {
        int ck = geo.C * geo.KH * geo.KW,
            l = geo.OH * geo.OW;
        using var cc = Ops.ToDType(columns, compute, false);
        // [N, C·K, L] -> [C·K, N·L], the primitive's layout
        using var perm = cc.View([ck, n, l], [cc.Strides[1], cc.Strides[0], cc.Strides[2]], cc.Offset);
        using var cols = perm.Clone();
        var y = Tensor.Empty([n, geo.C, geo.H, geo.W], compute, columns.Device, zeroed: true);
        if (n > 0)
            Col2ImBatch(cols, y, 0, geo.C, geo);
        return y;
    }

    /// <summary>[N, C, H, W] unfolded into [N, C·K, L] (no autograd).</summary>
    private static Tensor UnfoldCore(Tensor image, int n, Conv2dGeometry geo, DType compute)
    {
        int ck = geo.C * geo.KH * geo.KW,
            l = geo.OH * geo.OW;
        using var xc = Ops.ToDType(image, compute, false).ContiguousOwned();
        using var cols = Tensor.Empty([ck, n * l], compute, image.Device);
        if (n > 0)
            Im2ColBatch(xc, 0, geo.C, geo, cols);
        using var perm = cols.View([n, ck, l], [l, n * l, 1], 0);
        return perm.Clone();
    }

    /// <summary>The window geometry of unfold / fold, its settings checked.</summary>
    private static Conv2dGeometry BlockGeometry(
        string op,
        int channels,
        int h,
        int w,
        (int H, int W) kernel,
        (int H, int W) dilation,
        (int H, int W) padding,
        (int H, int W) stride
    )
    {
        if (kernel.H < 1 || kernel.W < 1 || dilation.H < 1 || dilation.W < 1 || stride.H < 1 || stride.W < 1)
            throw new ArgumentOutOfRangeException(
                nameof(kernel),
                $"{op}: kernel size, dilation and stride must be positive (kernel {kernel}, dilation {dilation}, "
                    + $"stride {stride})"
            );
        if (padding.H < 0 || padding.W < 0)
            throw new ArgumentOutOfRangeException(nameof(padding), $"{op}: padding {padding} must be non-negative");
        return Geometry(channels, h, w, kernel, stride, padding, dilation);
    }
}
