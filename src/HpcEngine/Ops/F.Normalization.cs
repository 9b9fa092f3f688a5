using HpcEngine.Autograd;

namespace HpcEngine;

public static partial class F
{
    /// <summary>Layer normalisation over the trailing dims given by <paramref name="normalizedShape"/>, with optional
    /// elementwise affine weight and bias of that shape. One fused kernel forward and backward.</summary>
    public static Tensor LayerNorm(
        Tensor x,
        int[] normalizedShape,
        Tensor? weight = null,
        Tensor? bias = null,
        double eps = 1e-5
    )
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(normalizedShape);
        if (!x.DType.IsFloating())
            throw Ops.Unsupported("layer_norm", x.DType, "a floating dtype");
        int k = normalizedShape.Length;
        if (k == 0 || k > x.Rank || !x.Shape[^k..].SequenceEqual(normalizedShape))
            throw new ShapeMismatchException(
                $"layer_norm: normalized_shape {Shapes.Format(normalizedShape)} must equal the input's trailing dims "
                    + $"(input shape {Shapes.Format(x.Shape)})"
            );
        foreach (var p in new[] { weight, bias })
            if (p != null && !p.Shape.SequenceEqual(normalizedShape))
                throw new ShapeMismatchException(
                    $"layer_norm: weight and bias must have shape {Shapes.Format(normalizedShape)}, got "
                        + $"{Shapes.Format(p.Shape)}"
                );
        foreach (var p in new[] { weight, bias })
            if (p != null)
                Ops.SameDevice("layer_norm", x, p);
        var compute = x.DType.ComputeType();
        var device = x.Device;
        int d = Shapes.NumEl(normalizedShape),
            rows = d == 0 ? 0 : x.NumEl / d;
        using var xc = Ops.ToDType(x, compute, false).ContiguousOwned();
        using var wc = weight != null ? Ops.ToDType(weight, compute, false).ContiguousOwned() : null;
        using var bc = bias != null ? Ops.ToDType(bias, compute, false).ContiguousOwned() : null;
        var y = Tensor.Empty(x.ShapeArray, compute, device);
        var mean = Tensor.Empty([rows], compute, device);
        var rstd = Tensor.Empty([rows], compute, device);
        xc.Backend.LayerNorm(xc, wc, bc, y, mean, rstd, rows, d, eps);
        if (compute != x.DType)
            y = y.Replace(Ops.ToDType(y, x.DType, false));
        var inputs = AffineInputs(x, weight, bias);
        if (!Recorder.Needs(inputs))
        {
            mean.Dispose();
            rstd.Dispose();
            return y;
        }
        var save = new List<Tensor> { xc, mean, rstd };
        if (wc != null)
            save.Add(wc);
        bool hasW = weight != null,
            hasB = bias != null;
        Recorder.Record(y, "layer_norm", inputs, [.. save], (g, s) =>
        {
            using var gc = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dx = Tensor.Empty(s[0].ShapeArray, compute, device);
            var dw = hasW ? Tensor.Empty(normalizedShape, compute, device) : null;
            var db = hasB ? Tensor.Empty(normalizedShape, compute, device) : null;
            s[0].Backend.LayerNormBackward(s[0], hasW ? s[3] : null, s[1], s[2], gc, dx, dw, db, rows, d);
            var result = new List<Tensor?> { dx };
            if (hasW)
                result.Add(dw);
            if (hasB)
                result.Add(db);
            return [.. result];
        });
        mean.Dispose();
        rstd.Dispose();
        return y;
    }

    /// <summary>Batch normalisation over dim 1 (channels) of [N, C] or [N, C, ...]. In training it normalises with the
    /// batch statistics (biased variance) and, when running buffers are given, updates them in place with
    /// <paramref name="momentum"/> (unbiased variance, as PyTorch); in eval it uses the running statistics.
    /// One fused kernel forward and backward (see BatchNormKernels).</summary>
    public static Tensor BatchNorm(
        Tensor x,
        Tensor? runningMean,
        Tensor? runningVar,
        Tensor? weight = null,
        Tensor? bias = null,
        bool training = true,
        double momentum = 0.1,
        double eps = 1e-5
    )
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 2)
            throw new ShapeMismatchException(
                $"batch_norm: the input needs at least 2 dims [N, C, ...], got {Shapes.Format(x.Shape)}"
            );
        int c = x.Shape[1];
        foreach (var p in new[] { runningMean, runningVar, weight, bias })
            if (p != null && (p.Rank != 1 || p.Shape[0] != c))
                throw new ShapeMismatchException(
                    $"batch_norm: per-channel tensors must have shape [{c}], got {Shapes.Format(p.Shape)}"
                );
        int n = x.Shape[0],
            l = c == 0 ? 0 : x.NumEl / Math.Max(n * c, 1);
        if (training && (long)n * l <= 1)
            throw new ShapeMismatchException(
                $"batch_norm: training needs more than one value per channel (input shape {Shapes.Format(x.Shape)})"
            );
        if (!training && (runningMean == null || runningVar == null))
            throw new ArgumentException("batch_norm: eval mode needs running_mean and running_var");
        foreach (var p in new[] { runningMean, runningVar, weight, bias })
            if (p != null)
                Ops.SameDevice("batch_norm", x, p);
        var compute = x.DType.ComputeType();
        var device = x.Device;
        using var xc = Ops.ToDType(x, compute, false).ContiguousOwned();
        using var wc = weight != null ? Ops.ToDType(weight, compute, false).ContiguousOwned() : null;
        using var bc = bias != null ? Ops.ToDType(bias, compute, false).ContiguousOwned() : null;
        var y = Tensor.Empty(x.ShapeArray, compute, device);
        var mean = Tensor.Empty([c], compute, device);
        var rstd = Tensor.Empty([c], compute, device);
        if (!training)
        {
            // Fixed statistics: rstd = 1/sqrt(running_var + eps).
            using var rm = Ops.ToDType(runningMean!, compute, false);
            using var rv = Ops.ToDType(runningVar!, compute, false);
            using var ve = Ops.AddScalar(rv, eps);
            using var rs = Ops.Rsqrt(ve);
            Ops.CopyInto(mean, rm);
            Ops.CopyInto(rstd, rs);
        }
        BatchNormDispatch(xc, y, n, c, l, wc, bc, mean, rstd, training, eps);
        if (training && runningMean != null && runningVar != null)
            using (GradMode.NoGrad())
            {
                // running_var takes the unbiased variance: 1/rstd² − eps, times m/(m − 1).
                double m = (double)n * l;
                using var r2 = Ops.Mul(rstd, rstd);
                using var inv = Ops.Reciprocal(r2);
                using var biased = Ops.AddScalar(inv, -eps);
                using var unbiased = Ops.MulScalar(biased, m / (m - 1));
                Lerp(runningMean, mean, momentum);
                Lerp(runningVar, unbiased, momentum);
            }
        if (compute != x.DType)
            y = y.Replace(Ops.ToDType(y, x.DType, false));
        var inputs = AffineInputs(x, weight, bias);
        if (!Recorder.Needs(inputs))
        {
            mean.Dispose();
            rstd.Dispose();
            return y;
        }
        bool gx = x.NeedsGrad,
            gw = weight?.NeedsGrad ?? false,
            gb = bias?.NeedsGrad ?? false;
        var save = new List<Tensor> { xc, mean, rstd };
        if (wc != null)
            save.Add(wc);
        bool hasW = weight != null,
            hasB = bias != null;
        Recorder.Record(y, "batch_norm", inputs, [.. save], (g, s) =>
        {
            using var gcn = Ops.ToDType(g, compute, false).ContiguousOwned();
            var dx = gx ? Tensor.Empty(s[0].ShapeArray, compute, device) : null;
            var dw = gw ? Tensor.Empty([c], compute, device) : null;
            var db = gb ? Tensor.Empty([c], compute, device) : null;
            BatchNormBackwardDispatch(s[0], gcn, dx, dw, db, n, c, l, hasW ? s[3] : null, s[1], s[2], training);
            var r = new List<Tensor?> { dx };
            if (hasW)
                r.Add(dw);
            if (hasB)
                r.Add(db);
            return [.. r];
        });
        mean.Dispose();
        rstd.Dispose();
        return y;
    }

    private static void BatchNormDispatch(
        Tensor x,
        Tensor y,
        int n,
        int c,
        int l,
        Tensor? w,
        Tensor? b,
        Tensor mean,
        Tensor rstd,
        bool training,
        double eps
    ) => x.Backend.BatchNorm(x, y, n, c, l, w, b, mean, rstd, training, eps);

    private static void BatchNormBackwardDispatch(
        Tensor x,
        Tensor g,
        Tensor? dx,
        Tensor? dw,
        Tensor? db,
        int n,
        int c,
        int l,
        Tensor? w,
        Tensor mean,
        Tensor rstd,
        bool training
    ) => x.Backend.BatchNormBackward(x, g, dx, dw, db, n, c, l, w, mean, rstd, training);

    /// <summary>The inputs of a norm with optional affine parameters, in the order its backward returns
    /// gradients.</summary>
    private static Tensor[] AffineInputs(Tensor x, Tensor? weight, Tensor? bias)
    {
        var inputs = new List<Tensor> { x };
        if (weight != null)
            inputs.Add(weight);
        if (bias != null)
            inputs.Add(bias);
        return [.. inputs];
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
