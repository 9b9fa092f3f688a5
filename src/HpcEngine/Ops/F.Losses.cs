using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>How a loss over many elements is reduced.</summary>
public enum Reduction
{
    /// <summary>The mean over the elements (or over the non-ignored targets).</summary>
    Mean,

    /// <summary>The sum over the elements.</summary>
    Sum,

    /// <summary>No reduction: one loss per element.</summary>
    None,
}

public static partial class F
{
    /// <summary>Cross-entropy between logits [N, C] (or [C], or [N, C, d1, ...]) and class indices [N] (or [N, d1,
    /// ...]). Targets equal to <paramref name="ignoreIndex"/> contribute nothing and are left out of the mean. With
    /// <paramref name="labelSmoothing"/> ε the target distribution is (1−ε)·one-hot + ε/C, as PyTorch defines
    /// it. A floating target of the logits' shape holds class probabilities (see <see cref="SoftCrossEntropy"/>).</summary>
    public static Tensor CrossEntropy(
        Tensor logits,
        Tensor target,
        int ignoreIndex = -100,
        double labelSmoothing = 0,
        Reduction reduction = Reduction.Mean
    )
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(target);
        if (labelSmoothing is < 0 or > 1)
            throw new ArgumentOutOfRangeException(
                nameof(labelSmoothing),
                $"cross_entropy: label_smoothing must be in [0, 1], got {labelSmoothing}"
            );
        if (target.DType.IsFloating())
            return SoftCrossEntropy(logits, target, null, labelSmoothing, reduction);
        if (logits.Rank == 2)
            return FusedCrossEntropy(logits, target, ignoreIndex, labelSmoothing, reduction);
        // Other ranks (a single row, or per-position classes [N, C, d1, ...]) compose log-softmax and the NLL.
        using var logp = LogSoftmax(logits, logits.Rank == 1 ? 0 : 1);
        if (labelSmoothing == 0)
            return NllLoss(logp, target, ignoreIndex, reduction);
        int c = logits.Rank == 1 ? logits.Shape[0] : logits.Shape[1];
        using var nll = NllLoss(logp, target, ignoreIndex, Reduction.None);
        // smooth_i = −(1/C) Σ_c logp[i, c], masked like nll.
        using var sumLogp = Ops.Sum(logp, [logits.Rank == 1 ? 0 : 1]);
        using var smooth0 = Ops.MulScalar(sumLogp, -1.0 / c);
        using var valid = ValidMask(target, ignoreIndex, smooth0.DType);
        using var smooth = Ops.Mul(smooth0, valid);
        using var a = Ops.MulScalar(nll, 1 - labelSmoothing);
        using var b = Ops.MulScalar(smooth, labelSmoothing);
        using var per = Ops.Add(a, b);
        return Reduce(per, valid, reduction);
    }

    /// <summary>Cross-entropy of logits [N, C]: one fused primitive gives each row's loss and the logits' gradient;
    /// the rows that count (not ignore_index) are counted on the device, so nothing is read back and the step can be
    /// captured in a graph. Eagerly the targets are also read back once to check their range; under capture an
    /// out-of-range target gives a NaN loss instead.</summary>
    private static Tensor FusedCrossEntropy(
        Tensor logits,
        Tensor target,
        int ignoreIndex,
        double smoothing,
        Reduction reduction
    )
    {
        Ops.SameDevice("cross_entropy", logits, target);
        if (logits.DType is DType.BFloat16 or DType.Float16)
        {
            // 16-bit logits: the loss in fp32 (the fused kernel), rounded back; the casts carry the gradient.
            using var wide = Ops.To(logits, DType.Float32);
            using var loss32 = FusedCrossEntropy(wide, target, ignoreIndex, smoothing, reduction);
            return Ops.To(loss32, logits.DType);
        }
        int n = logits.Shape[0],
            c = logits.Shape[1];
        if (target.Rank != 1 || target.Shape[0] != n)
            throw ShapeMismatchException.For(
                "cross_entropy",
                $"the target must be [N] = [{n}] class indices",
                logits,
                target
            );
        if (target.DType is not (DType.Int64 or DType.Int32))
            throw new DTypeMismatchException(
                $"cross_entropy: targets must be class indices (int64 or int32), got {target.DType.TorchName()}"
            );
        var backend = logits.Backend;
        if (!backend.Capturing)
            foreach (long v in target.ToArray<long>())
                if (v != ignoreIndex && (v < 0 || v >= c))
                    throw new IndexOutOfRangeException(
                        $"cross_entropy: target class {v} is out of range for {c} classes (valid 0..{c - 1}, or "
                            + $"ignore_index {ignoreIndex})"
                    );
        using var t64 =
            target.DType == DType.Int64 ? Ops.ContiguousNoGrad(target) : Ops.ToDType(target, DType.Int64, false);
        using var lc = Ops.ContiguousNoGrad(logits);
        var rowLoss = Tensor.Empty([n], logits.DType, logits.Device);
        using var dlogits = Tensor.Empty([n, c], logits.DType, logits.Device);
        using var counted = reduction == Reduction.Mean ? Tensor.Empty([], logits.DType, logits.Device) : null;
        backend.CrossEntropy(lc, t64, rowLoss, dlogits, ignoreIndex, smoothing, counted);
        Tensor loss;
        if (reduction == Reduction.None)
            loss = rowLoss.Alias();
        else
        {
            loss = Ops.Sum(rowLoss, [0]);
            if (counted != null)
                loss = loss.Replace(Ops.Div(loss, counted));
        }
        rowLoss.Dispose();
        if (!Recorder.Needs(logits))
            return loss;
        return Recorder.Record(loss, "cross_entropy", [logits], [dlogits], (g, s) =>
        {
            if (reduction != Reduction.None)
                return [Ops.Mul(s[0], g)];
            using var g2 = Ops.Unsqueeze(g, 1);
            return [Ops.Mul(s[0], g2)];
        });
    }

    /// <summary>Negative log-likelihood of log-probabilities [N, C, ...] at class indices [N, ...].</summary>
    public static Tensor NllLoss(
        Tensor logProbs,
        Tensor target,
        int ignoreIndex = -100,
        Reduction reduction = Reduction.Mean
    )
    {
        ArgumentNullException.ThrowIfNull(logProbs);
        ArgumentNullException.ThrowIfNull(target);
        if (target.DType is not (DType.Int64 or DType.Int32))
            throw new DTypeMismatchException(
                $"nll_loss: targets must be class indices (int64 or int32), got {target.DType.TorchName()}"
            );
        bool unbatched = logProbs.Rank == 1;
        int classDim = unbatched ? 0 : 1;
        var expected = unbatched ? Array.Empty<int>() : logProbs.ShapeArray.Where((_, i) => i != 1).ToArray();
        if (!target.Shape.SequenceEqual(expected))
            throw ShapeMismatchException.For(
                "nll_loss",
                $"the target must have the input's shape without the class dim ({Shapes.Format(expected)})",
                logProbs,
                target
            );
        int c = logProbs.Shape[classDim];
        using var valid = ValidMask(target, ignoreIndex, logProbs.DType);
        using var validBool = Ops.To(valid, DType.Bool);
        using var zero = Tensor.Zeros([], DType.Int64);
        using var t64 = Ops.To(target, DType.Int64);
        using var safeTarget = Ops.Where(validBool, t64, zero);
        using var tmax = Ops.Max(safeTarget.NumEl > 0 ? safeTarget : zero);
        using var tmin = Ops.Min(safeTarget.NumEl > 0 ? safeTarget : zero);
        if (tmax.Item() >= c || tmin.Item() < 0)
            throw new IndexOutOfRangeException(
                $"nll_loss: target class {(tmax.Item() >= c ? tmax.Item() : tmin.Item())} is out of range for {c} "
                    + $"classes (valid 0..{c - 1}, or ignore_index {ignoreIndex})"
            );
        using var idx = Ops.Unsqueeze(safeTarget, classDim);
        using var picked = Ops.Gather(logProbs, classDim, idx);
        using var picked1 = Ops.Squeeze(picked, classDim);
        using var neg = Ops.Neg(picked1);
        using var masked = Ops.Mul(neg, valid);
        return Reduce(masked, valid, reduction);
    }

    /// <summary>Mean (or sum) squared error.</summary>
    public static Tensor MseLoss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(target);
        if (!input.Shape.SequenceEqual(target.Shape))
            throw ShapeMismatchException.For("mse_loss", "input and target must have the same shape", input, target);
        using var d = Ops.Sub(input, target);
        using var sq = Ops.Mul(d, d);
        return Reduced(sq, reduction);
    }

    private static Tensor ValidMask(Tensor target, int ignoreIndex, DType dtype)
    {
        using var ig = Tensor.Scalar(ignoreIndex, DType.Int64);
        using var ne = Ops.Ne(target, ig);
        return Ops.To(ne, dtype);
    }

    private static Tensor Reduce(Tensor perElement, Tensor valid, Reduction reduction)
    {
        switch (reduction)
        {
            case Reduction.Sum:
                return Ops.Sum(perElement);
            case Reduction.None:
                return Ops.Identity(perElement);
            default:
                using (var total = Ops.Sum(perElement))
                using (var count = Ops.Sum(valid))
                    return Ops.Div(total, count);
        }
    }
}
