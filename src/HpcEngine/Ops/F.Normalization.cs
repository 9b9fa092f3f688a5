using HpcEngine.Autograd;
using HpcEngine.Backends.Cpu;

namespace HpcEngine;

public static partial class F
{
    /// <summary>Layer normalisation over the trailing dims given by <paramref name="normalizedShape"/>, with optional
    /// elementwise affine weight and bias of that shape. One fused kernel forward and backward.</summary>
    public static unsafe Tensor LayerNorm(Tensor x, int[] normalizedShape, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(normalizedShape);
        if (!x.DType.IsFloating()) throw Ops.Unsupported("layer_norm", x.DType, "a floating dtype");
        int k = normalizedShape.Length;
        if (k == 0 || k > x.Rank || !x.Shape[^k..].SequenceEqual(normalizedShape))
            throw new ShapeMismatchException($"layer_norm: normalized_shape {Shapes.Format(normalizedShape)} must equal the input's trailing dims (input shape {Shapes.Format(x.Shape)})");
        foreach (var p in new[] { weight, bias })
            if (p != null && !p.Shape.SequenceEqual(normalizedShape))
                throw new ShapeMismatchException($"layer_norm: weight and bias must have shape {Shapes.Format(normalizedShape)}, got {Shapes.Format(p.Shape)}");
        var compute = x.DType.ComputeType();
        int d = Shapes.NumEl(normalizedShape), rows = d == 0 ? 0 : x.NumEl / d;
        using var xc = Ops.ToDType(x, compute, false).ContiguousOwned();
        using var wc = weight != null ? Ops.ToDType(weight, compute, false).ContiguousOwned() : null;
        using var bc = bias != null ? Ops.ToDType(bias, compute, false).ContiguousOwned() : null;
        var y = Tensor.Empty(x.Shape, compute);
        var mean = Tensor.Empty([rows], compute);
        var rstd = Tensor.Empty([rows], compute);
        if (compute == DType.Float32)
            LayerNormKernels.Forward(xc.Ptr<float>(), wc != null ? wc.Ptr<float>() : null, bc != null ? bc.Ptr<float>() : null, y.Ptr<float>(), mean.Ptr<float>(), rstd.Ptr<float>(), rows, d, eps);
        else
            LayerNormKernels.Forward(xc.Ptr<double>(), wc != null ? wc.Ptr<double>() : null, bc != null ? bc.Ptr<double>() : null, y.Ptr<double>(), mean.Ptr<double>(), rstd.Ptr<double>(), rows, d, eps);
        if (compute != x.DType) y = y.Replace(Ops.ToDType(y, x.DType, false));
        var inputs = new List<Tensor> { x };
        if (weight != null) inputs.Add(weight);
        if (bias != null) inputs.Add(bias);
        if (!Recorder.Needs([.. inputs]))
        {
            mean.Dispose();
            rstd.Dispose();
            return y;
        }
        var save = new List<Tensor> { xc, mean, rstd };
        if (wc != null) save.Add(wc);
        bool hasW = weight != null, hasB = bias != null;
        Recorder.Record(y, "layer_norm", [.. inputs], [.. save], (g, s) =>
        {
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dx = Tensor.Empty(s[0].Shape, compute);
            var dw = hasW ? Tensor.Empty(normalizedShape, compute) : null;
            var db = hasB ? Tensor.Empty(normalizedShape, compute) : null;
            if (compute == DType.Float32)
                LayerNormKernels.Backward(s[0].Ptr<float>(), hasW ? s[3].Ptr<float>() : null, s[1].Ptr<float>(), s[2].Ptr<float>(), gc.Ptr<float>(), dx.Ptr<float>(),
                    dw != null ? dw.Ptr<float>() : null, db != null ? db.Ptr<float>() : null, rows, d);
            else
                LayerNormKernels.Backward(s[0].Ptr<double>(), hasW ? s[3].Ptr<double>() : null, s[1].Ptr<double>(), s[2].Ptr<double>(), gc.Ptr<double>(), dx.Ptr<double>(),
                    dw != null ? dw.Ptr<double>() : null, db != null ? db.Ptr<double>() : null, rows, d);
            var result = new List<Tensor?> { dx };
            if (hasW) result.Add(dw);
            if (hasB) result.Add(db);
            return [.. result];
        });
        mean.Dispose();
        rstd.Dispose();
        return y;
    }

    /// <summary>Batch normalisation over dim 1 (channels) of [N, C] or [N, C, ...]. In training it normalises with the
    /// batch statistics (biased variance) and, when running buffers are given, updates them in place with
    /// <paramref name="momentum"/> (unbiased variance, as PyTorch); in eval it uses the running statistics.</summary>
    public static Tensor BatchNorm(Tensor x, Tensor? runningMean, Tensor? runningVar, Tensor? weight = null, Tensor? bias = null,
        bool training = true, double momentum = 0.1, double eps = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 2) throw new ShapeMismatchException($"batch_norm: the input needs at least 2 dims [N, C, ...], got {Shapes.Format(x.Shape)}");
        int c = x.Shape[1];
        foreach (var p in new[] { runningMean, runningVar, weight, bias })
            if (p != null && (p.Rank != 1 || p.Shape[0] != c))
                throw new ShapeMismatchException($"batch_norm: per-channel tensors must have shape [{c}], got {Shapes.Format(p.Shape)}");
        var dims = Enumerable.Range(0, x.Rank).Where(i => i != 1).ToArray();
        var bshape = Enumerable.Range(0, x.Rank).Select(i => i == 1 ? c : 1).ToArray();
        Tensor normalized;
        if (training)
        {
            int n = x.NumEl / Math.Max(c, 1);
            if (n <= 1) throw new ShapeMismatchException($"batch_norm: training needs more than one value per channel (input shape {Shapes.Format(x.Shape)})");
            using var mean = Ops.Mean(x, dims, keepDim: true);
            using var centered = Ops.Sub(x, mean);
            using var sq = Ops.Mul(centered, centered);
            using var var = Ops.Mean(sq, dims, keepDim: true);
            using var ve = Ops.AddScalar(var, eps);
            using var rs = Ops.Rsqrt(ve);
            normalized = Ops.Mul(centered, rs);
            if (runningMean != null && runningVar != null)
                using (GradMode.NoGrad())
                {
                    using var m1 = Ops.Reshape(mean, c);
                    using var v1 = Ops.Reshape(var, c);
                    using var unbiased = Ops.MulScalar(v1, (double)n / (n - 1));
                    Lerp(runningMean, m1, momentum);
                    Lerp(runningVar, unbiased, momentum);
                }
        }
        else
        {
            if (runningMean == null || runningVar == null)
                throw new ArgumentException("batch_norm: eval mode needs running_mean and running_var");
            using var m = Ops.Reshape(runningMean, bshape);
            using var v = Ops.Reshape(runningVar, bshape);
            using var ve = Ops.AddScalar(v, eps);
            using var rs = Ops.Rsqrt(ve);
            using var centered = Ops.Sub(x, m);
            normalized = Ops.Mul(centered, rs);
        }
        if (weight != null)
        {
            using var w = Ops.Reshape(weight, bshape);
            normalized = normalized.Replace(Ops.Mul(normalized, w));
        }
        if (bias != null)
        {
            using var b = Ops.Reshape(bias, bshape);
            normalized = normalized.Replace(Ops.Add(normalized, b));
        }
        return normalized;
    }

    /// <summary>buffer ← (1 − momentum)·buffer + momentum·value, in place.</summary>
    private static void Lerp(Tensor buffer, Tensor value, double momentum)
    {
        using var a = Ops.MulScalar(buffer, 1 - momentum);
        using var b = Ops.MulScalar(value, momentum);
        using var s = Ops.Add(a, b);
        Ops.CopyInto(buffer, s);
    }
}
