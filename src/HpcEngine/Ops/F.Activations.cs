using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>Neural-network functions, shaped like <c>torch.nn.functional</c>.</summary>
public static partial class F
{
    /// <summary>max(x, 0).</summary>
    public static Tensor Relu(Tensor x) => Ops.Relu(x);

    /// <summary>GELU: x·Φ(x), or its tanh approximation with <paramref name="approximate"/> = "tanh" (PyTorch's
    /// argument).</summary>
    public static Tensor Gelu(Tensor x, string approximate = "none") => Ops.Gelu(x, approximate);

    /// <summary>SiLU (swish): x·σ(x).</summary>
    public static Tensor Silu(Tensor x) => Ops.Silu(x);

    /// <summary>The logistic function 1 / (1 + e⁻ˣ).</summary>
    public static Tensor Sigmoid(Tensor x) => Ops.Sigmoid(x);

    /// <summary>The hyperbolic tangent.</summary>
    public static Tensor Tanh(Tensor x) => Ops.Tanh(x);

    /// <summary>x for x ≥ 0, <paramref name="negativeSlope"/>·x below.</summary>
    public static Tensor LeakyRelu(Tensor x, double negativeSlope = 0.01) => Ops.LeakyRelu(x, negativeSlope);

    /// <summary>Softmax along <paramref name="dim"/>.</summary>
    public static Tensor Softmax(Tensor x, int dim) => SoftmaxImpl(x, dim, log: false);

    /// <summary>Log-softmax along <paramref name="dim"/> (stable: x − max − log Σ exp(x − max)).</summary>
    public static Tensor LogSoftmax(Tensor x, int dim) => SoftmaxImpl(x, dim, log: true);

    private static Tensor SoftmaxImpl(Tensor x, int dim, bool log)
    {
        ArgumentNullException.ThrowIfNull(x);
        string name = log ? "log_softmax" : "softmax";
        if (!x.DType.IsFloating())
            throw Ops.Unsupported(name, x.DType, "a floating dtype");
        if (x.Rank == 0)
        {
            using var x1 = Ops.Reshape(x, 1);
            using var r1 = SoftmaxImpl(x1, 0, log);
            return Ops.Reshape(r1, []);
        }
        int d = Shapes.NormalizeDim(name, dim, x.Rank);
        if (d != x.Rank - 1)
        {
            // Move the dim last, compute on contiguous rows, move it back.
            using var moved = Ops.Transpose(x, d, -1);
            using var r = SoftmaxImpl(moved, -1, log);
            return Ops.Transpose(r, d, -1);
        }
        var compute = x.DType.ComputeType();
        using var xc = Ops.ToDType(x, compute, false).ContiguousOwned();
        int n = x.Shape[^1],
            rows = n == 0 ? 0 : x.NumEl / n;
        var y = Tensor.Empty(x.Shape, compute, x.Device);
        xc.Backend.Softmax(xc, y, rows, n, log);
        if (compute != x.DType)
            y = y.Replace(Ops.ToDType(y, x.DType, false));
        if (!Recorder.Needs(x))
            return y;
        return Recorder.Record(y, name, [x], [y], (g, s) =>
        {
            using var yc = Ops.ToDType(s[0], compute, false).ContiguousOwned();
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dx = Tensor.Empty(yc.Shape, compute, yc.Device);
            yc.Backend.SoftmaxBackward(yc, gc, dx, rows, n, log);
            if (compute == g.DType)
                return [dx];
            using (dx)
                return [Ops.ToDType(dx, g.DType, false)];
        });
    }

    /// <summary>Zeroes elements with probability <paramref name="p"/> and scales the rest by 1/(1−p) in training;
    /// the identity in eval. The mask comes from the Philox stream, so it is reproducible from the seed.</summary>
    public static Tensor Dropout(Tensor x, double p = 0.5, bool training = true, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (p is < 0 or > 1)
            throw new ArgumentOutOfRangeException(nameof(p), $"dropout: p must be in [0, 1], got {p}");
        if (!training || p == 0)
            return Ops.Identity(x);
        if (p == 1)
            return Ops.MulScalar(x, 0);
        // One kernel draws the scaled keep mask: keep · (1/(1−p)) rounded once, from the generator's Philox stream.
        using var scaled = Tensor.BernoulliOn(
            x.ShapeArray,
            1 - p,
            (float)(1.0 / (1 - p)),
            x.DType,
            generator,
            x.Device
        );
        return Ops.Mul(x, scaled);
    }
}
