using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine;

public static partial class F
{
    /// <summary>2-D max pooling over [N, C, H, W]; the stride defaults to the kernel size. With <paramref
    /// name="ceilMode"/> the output size rounds up (PyTorch's rule: no window starts past the input and its left
    /// padding).</summary>
    public static Tensor MaxPool2d(
        Tensor x,
        int kernelSize,
        int? stride = null,
        int padding = 0,
        int dilation = 1,
        bool ceilMode = false
    )
    {
        var (values, indices) = MaxPool2dCore(x, kernelSize, stride, padding, dilation, ceilMode, wantIndices: false);
        indices?.Dispose();
        return values;
    }

    /// <summary><see cref="MaxPool2d"/> with return_indices: the values and, for each, the int64 position of its
    /// maximum in its input plane (flattened H·W, PyTorch's convention; a NaN wins its window).</summary>
    public static (Tensor Values, Tensor Indices) MaxPool2dWithIndices(
        Tensor x,
        int kernelSize,
        int? stride = null,
        int padding = 0,
        int dilation = 1,
        bool ceilMode = false
    )
    {
        var (values, indices) = MaxPool2dCore(x, kernelSize, stride, padding, dilation, ceilMode, wantIndices: true);
        return (values, indices!);
    }

    private static (Tensor Values, Tensor? Indices) MaxPool2dCore(
        Tensor x,
        int kernelSize,
        int? stride,
        int padding,
        int dilation,
        bool ceilMode,
        bool wantIndices
    )
    {
        ArgumentNullException.ThrowIfNull(x);
        var (planes, geo, compute, xc) = PoolSetup(
            "max_pool2d",
            x,
            kernelSize,
            stride ?? kernelSize,
            padding,
            dilation,
            ceilMode
        );
        using var _ = xc;
        if (padding * 2 > kernelSize)
            throw new ArgumentException(
                $"max_pool2d: padding ({padding}) must be at most half the kernel size ({kernelSize})",
                nameof(padding)
            );
        var y = Tensor.Empty([x.Shape[0], x.Shape[1], geo.OH, geo.OW], compute, x.Device);
        var indices = x.Backend.MaxPool(xc, y, planes, geo);
        if (compute != x.DType)
            y = y.Replace(Ops.ToDType(y, x.DType, false));
        // The backend's own argmax (int32 on CUDA) stays for the backward; the caller gets int64, as PyTorch.
        Tensor? returned = wantIndices ? Ops.ToDType(indices, DType.Int64, false).ContiguousOwned() : null;
        if (!Recorder.Needs(x))
        {
            indices.Dispose();
            return (y, returned);
        }
        var inShape = x.ShapeArray;
        Recorder.Record(y, "max_pool2d", [x], [indices], (g, s) =>
        {
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dx = Tensor.Empty(inShape, compute, gc.Device, zeroed: true);
            gc.Backend.MaxPoolBackward(gc, s[0], dx, planes, geo);
            return [dx];
        });
        indices.Dispose();
        return (y, returned);
    }

    /// <summary>2-D average pooling over [N, C, H, W]; the stride defaults to the kernel size. The divisor is the
    /// window clipped to the padded input (<paramref name="countIncludePad"/>) or to the input; with <paramref
    /// name="ceilMode"/> the output size rounds up as in <see cref="MaxPool2d"/>.</summary>
    public static Tensor AvgPool2d(
        Tensor x,
        int kernelSize,
        int? stride = null,
        int padding = 0,
        bool countIncludePad = true,
        bool ceilMode = false
    )
    {
        ArgumentNullException.ThrowIfNull(x);
        var (planes, geo, compute, xc) = PoolSetup(
            "avg_pool2d",
            x,
            kernelSize,
            stride ?? kernelSize,
            padding,
            1,
            ceilMode
        );
        using var _ = xc;
        if (padding * 2 > kernelSize)
            throw new ArgumentException(
                $"avg_pool2d: padding ({padding}) must be at most half the kernel size ({kernelSize})",
                nameof(padding)
            );
        var y = Tensor.Empty([x.Shape[0], x.Shape[1], geo.OH, geo.OW], compute, x.Device);
        x.Backend.AvgPool(xc, y, planes, geo, countIncludePad);
        if (compute != x.DType)
            y = y.Replace(Ops.ToDType(y, x.DType, false));
        if (!Recorder.Needs(x))
            return y;
        var inShape = x.ShapeArray;
        return Recorder.Record(y, "avg_pool2d", [x], g =>
        {
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dx = Tensor.Empty(inShape, compute, gc.Device, zeroed: true);
            gc.Backend.AvgPoolBackward(gc, dx, planes, geo, countIncludePad);
            return [dx];
        });
    }

    private static (int Planes, Conv2dGeometry Geo, DType Compute, Tensor Xc) PoolSetup(
        string op,
        Tensor x,
        int k,
        int stride,
        int padding,
        int dilation,
        bool ceil = false
    )
    {
        if (x.Rank != 4)
            throw new ShapeMismatchException($"{op}: input must be [N, C, H, W], got {Shapes.Format(x.Shape)}");
        if (!x.DType.IsFloating())
            throw Ops.Unsupported(op, x.DType, "a floating dtype");
        if (k < 1 || stride < 1 || dilation < 1 || padding < 0)
            throw new ArgumentOutOfRangeException(
                nameof(k),
                $"{op}: kernel, stride and dilation must be positive and padding non-negative"
            );
        var geo = new Conv2dGeometry(
            x.Shape[1],
            x.Shape[2],
            x.Shape[3],
            k,
            k,
            stride,
            stride,
            padding,
            padding,
            dilation,
            dilation,
            ceil
        );
        if (geo.OH <= 0 || geo.OW <= 0)
            throw new ShapeMismatchException(
                $"{op}: kernel {k} is larger than the padded input {Shapes.Format(x.Shape)}"
            );
        var compute = x.DType.ComputeType();
        return (x.Shape[0] * x.Shape[1], geo, compute, Ops.ToDType(x, compute, false).ContiguousOwned());
    }
}
