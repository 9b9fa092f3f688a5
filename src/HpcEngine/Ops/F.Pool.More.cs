namespace HpcEngine;

/// <summary>1-d convolution and pooling, and adaptive pooling, composed over the 2-d convolution, strided slices and
/// matmuls: conv1d is conv2d on a height-1 image; a 1-d pool stacks the window's k strided slices and reduces them
/// (max routes the gradient to the first maximum, as PyTorch); adaptive average pooling multiplies by PyTorch's
/// window-averaging matrix along each dim (windows [⌊i·in/out⌋, ⌈(i+1)·in/out⌉)), adaptive max pooling takes each
/// window's max per dim (a max over a rectangle is the max of its rows' maxima).</summary>
public static partial class F
{
    /// <summary>1-d convolution: input [N, C, L], weight [O, C/groups, K], bias [O].</summary>
    public static Tensor Conv1d(
        Tensor input,
        Tensor weight,
        Tensor? bias = null,
        int stride = 1,
        int padding = 0,
        int dilation = 1,
        int groups = 1
    )
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        if (input.Rank != 3 || weight.Rank != 3)
            throw ShapeMismatchException.For(
                "conv1d",
                "input must be [N, C, L] and weight [O, C/groups, K]",
                input,
                weight
            );
        using var x = Ops.Unsqueeze(input, 2);
        using var w = Ops.Unsqueeze(weight, 2);
        using var y = Conv2d(x, w, bias, (1, stride), (0, padding), (1, dilation), groups);
        return Ops.Squeeze(y, 2);
    }

    /// <summary>1-d max pooling over [N, C, L] (or [C, L]); the stride defaults to the kernel size.</summary>
    public static Tensor MaxPool1d(Tensor x, int kernelSize, int? stride = null, int padding = 0, int dilation = 1)
    {
        using var windows = Windows1d(
            "max_pool1d",
            x,
            kernelSize,
            stride ?? kernelSize,
            padding,
            dilation,
            double.NegativeInfinity
        );
        var (values, indices) = Ops.Max(windows, -1);
        indices.Dispose();
        return values;
    }

    /// <summary>1-d average pooling over [N, C, L] (or [C, L]); with <paramref name="countIncludePad"/> false the
    /// padding is left out of each window's count.</summary>
    public static Tensor AvgPool1d(
        Tensor x,
        int kernelSize,
        int? stride = null,
        int padding = 0,
        bool countIncludePad = true
    )
    {
        int s = stride ?? kernelSize;
        using var windows = Windows1d("avg_pool1d", x, kernelSize, s, padding, 1, 0);
        if (countIncludePad || padding == 0)
            return Ops.Mean(windows, [-1]);
        using var sum = Ops.Sum(windows, [-1]);
        using var ones = Tensor.Ones([1, x.Shape[^1]], x.DType);
        using var onesOn = ones.To(x.Device);
        using var counted = Windows1d("avg_pool1d", onesOn, kernelSize, s, padding, 1, 0);
        using var count = Ops.Sum(counted, [-1]);
        return Ops.Div(sum, count);
    }

    /// <summary>torch.nn.functional.adaptive_avg_pool1d: [.., L] → [.., outputSize].</summary>
    public static Tensor AdaptiveAvgPool1d(Tensor x, int outputSize) =>
        AdaptiveAvg("adaptive_avg_pool1d", x, -1, outputSize);

    /// <summary>torch.nn.functional.adaptive_avg_pool2d: [.., H, W] → [.., outH, outW].</summary>
    public static Tensor AdaptiveAvgPool2d(Tensor x, (int H, int W) outputSize)
    {
        using var rows = AdaptiveAvg("adaptive_avg_pool2d", x, -1, outputSize.W);
        return AdaptiveAvg("adaptive_avg_pool2d", rows, -2, outputSize.H);
    }

    /// <summary>torch.nn.functional.adaptive_max_pool1d (values): [.., L] → [.., outputSize].</summary>
    public static Tensor AdaptiveMaxPool1d(Tensor x, int outputSize) =>
        AdaptiveMax("adaptive_max_pool1d", x, -1, outputSize);

    /// <summary>torch.nn.functional.adaptive_max_pool2d (values): [.., H, W] → [.., outH, outW].</summary>
    public static Tensor AdaptiveMaxPool2d(Tensor x, (int H, int W) outputSize)
    {
        using var rows = AdaptiveMax("adaptive_max_pool2d", x, -1, outputSize.W);
        return AdaptiveMax("adaptive_max_pool2d", rows, -2, outputSize.H);
    }

    /// <summary>PyTorch's adaptive window i of <paramref name="outSize"/> over <paramref name="inSize"/>.</summary>
    private static (int Start, int End) AdaptiveWindow(int i, int inSize, int outSize) =>
        ((int)((long)i * inSize / outSize), (int)(((long)(i + 1) * inSize + outSize - 1) / outSize));

    private static void CheckAdaptive(string op, Tensor x, int dim, int outSize)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 2)
            throw new ShapeMismatchException($"{op}: input must have a channel dim, got {Shapes.Format(x.Shape)}");
        if (outSize < 1)
            throw new ArgumentOutOfRangeException(
                nameof(outSize),
                $"{op}: output size must be positive, got {outSize}"
            );
        if (x.Shape[Shapes.NormalizeDim(op, dim, x.Rank)] == 0)
            throw new ShapeMismatchException($"{op}: the pooled dim is empty (shape {Shapes.Format(x.Shape)})");
    }

    private static Tensor AdaptiveAvg(string op, Tensor x, int dim, int outSize)
    {
        CheckAdaptive(op, x, dim, outSize);
        int d = Shapes.NormalizeDim(op, dim, x.Rank),
            n = x.Shape[d];
        var a = new double[n * outSize]; // [in, out]: column i averages window i
        for (int i = 0; i < outSize; i++)
        {
            var (s, e) = AdaptiveWindow(i, n, outSize);
            for (int j = s; j < e; j++)
                a[j * outSize + i] = 1.0 / (e - s);
        }
        using var host = Tensor.FromArray(a, n, outSize);
        using var typed = host.To(x.DType.IsFloating() ? x.DType : DType.Float32);
        using var avg = typed.To(x.Device);
        if (d == x.Rank - 1)
            return Ops.MatMul(x, avg);
        using var moved = Ops.Transpose(x, d, -1);
        using var y = Ops.MatMul(moved, avg);
        return Ops.Transpose(y, d, -1);
    }

    private static Tensor AdaptiveMax(string op, Tensor x, int dim, int outSize)
    {
        CheckAdaptive(op, x, dim, outSize);
        int d = Shapes.NormalizeDim(op, dim, x.Rank),
            n = x.Shape[d];
        var parts = new Tensor[outSize];
        try
        {
            for (int i = 0; i < outSize; i++)
            {
                var (s, e) = AdaptiveWindow(i, n, outSize);
                using var window = Ops.Narrow(x, d, s, e - s);
                var (values, indices) = Ops.Max(window, d, keepDim: true);
                indices.Dispose();
                parts[i] = values;
            }
            return Ops.Cat(parts, d);
        }
        finally
        {
            foreach (var p in parts)
                p?.Dispose();
        }
    }

    /// <summary>x [.., L] padded with <paramref name="fill"/> and viewed as [.., out, k]: window o's k elements are
    /// the strided slices at offsets j·dilation.</summary>
    private static Tensor Windows1d(string op, Tensor x, int k, int stride, int padding, int dilation, double fill)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank is not (2 or 3))
            throw new ShapeMismatchException($"{op}: input must be [N, C, L] or [C, L], got {Shapes.Format(x.Shape)}");
        if (k < 1 || stride < 1 || dilation < 1 || padding < 0)
            throw new ArgumentOutOfRangeException(
                nameof(k),
                $"{op}: kernel, stride and dilation must be positive and padding non-negative"
            );
        if (padding * 2 > k)
            throw new ArgumentException(
                $"{op}: padding ({padding}) must be at most half the kernel size ({k})",
                nameof(padding)
            );
        int length = x.Shape[^1] + 2 * padding,
            outLength = (length - dilation * (k - 1) - 1) / stride + 1;
        if (outLength <= 0)
            throw new ShapeMismatchException(
                $"{op}: kernel {k} is larger than the padded input {Shapes.Format(x.Shape)}"
            );
        using var padded = padding > 0 ? Pad(x, [padding, padding], "constant", fill) : Ops.Identity(x);
        var taps = new Tensor[k];
        try
        {
            for (int j = 0; j < k; j++)
            {
                int start = j * dilation;
                taps[j] = Ops.Slice(padded, -1, start, start + (outLength - 1) * stride + 1, stride);
            }
            return Ops.Stack(taps, -1);
        }
        finally
        {
            foreach (var t in taps)
                t?.Dispose();
        }
    }
}
