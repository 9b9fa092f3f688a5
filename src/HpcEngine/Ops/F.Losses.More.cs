namespace HpcEngine;

/// <summary>Cross-entropy with class weights and with probability (soft) targets, and the pairwise losses
/// (margin ranking, cosine embedding), composed with PyTorch's formulas: a weighted mean divides by the weights of the
/// counted targets; a soft-target mean divides by the number of rows.</summary>
public static partial class F
{
    /// <summary>Cross-entropy with a weight per class (torch's <c>weight=</c>): row i counts w[y_i]·(−log p_i,y_i);
    /// with label smoothing ε, (1 − ε) of that plus ε/C · Σ_c w_c·(−log p_i,c). The mean divides by Σ w[y_i] over the
    /// rows not ignored. Logits [N, C] (or [C], or [N, C, d...] with targets [N, d...]).</summary>
    public static Tensor CrossEntropy(
        Tensor logits,
        Tensor target,
        Tensor weight,
        int ignoreIndex = -100,
        double labelSmoothing = 0,
        Reduction reduction = Reduction.Mean
    )
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(weight);
        var (rows, flatTarget) = ClassRows("cross_entropy", logits, target);
        using (rows)
        using (flatTarget)
        {
            int c = rows.Shape[1];
            if (weight.Rank != 1 || weight.Shape[0] != c)
                throw new ShapeMismatchException(
                    $"cross_entropy: weight has shape {Shapes.Format(weight.Shape)}; it needs one entry per class ([{c}])"
                );
            using var logp = LogSoftmax(rows, 1);
            using var valid = ValidMask(flatTarget, ignoreIndex, logp.DType);
            using var zero = Tensor.Scalar(0, DType.Int64);
            using var none = Tensor.Scalar(0, logp.DType);
            using var counted = Ops.Ne(valid, none);
            using var safe = Ops.Where(counted, flatTarget, zero);
            using var picked = Ops.IndexSelect(weight, 0, safe);
            using var w = Ops.Mul(picked, valid);
            using var col = Ops.Unsqueeze(safe, 1);
            using var at = Ops.Gather(logp, 1, col);
            using var nll = Ops.Squeeze(at, 1);
            using var weighted = Ops.Mul(nll, w);
            using var per0 = Ops.Neg(weighted);
            Tensor per = Ops.Identity(per0);
            if (labelSmoothing > 0)
            {
                using var byClass = Ops.Mul(logp, weight);
                using var all = Ops.Sum(byClass, [1]);
                using var masked = Ops.Mul(all, valid);
                using var smooth = Ops.MulScalar(masked, -labelSmoothing / c);
                using var main = Ops.MulScalar(per0, 1 - labelSmoothing);
                per.Dispose();
                per = Ops.Add(main, smooth);
            }
            using (per)
                return Reduce(per, w, reduction);
        }
    }

    /// <summary>Cross-entropy against class probabilities (a float target of the logits' shape, torch's soft
    /// targets): row i is −Σ_c t_ic · log p_ic, with label smoothing t → (1 − ε)·t + ε/C; the mean divides by the
    /// number of rows.</summary>
    public static Tensor SoftCrossEntropy(
        Tensor logits,
        Tensor probabilities,
        Tensor? weight = null,
        double labelSmoothing = 0,
        Reduction reduction = Reduction.Mean
    )
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(probabilities);
        if (!probabilities.Shape.SequenceEqual(logits.Shape) || !probabilities.DType.IsFloating())
            throw new ShapeMismatchException(
                $"cross_entropy: probability targets must be floating and of the logits' shape "
                    + $"{Shapes.Format(logits.Shape)}, got {probabilities.DType.TorchName()} "
                    + $"{Shapes.Format(probabilities.Shape)}"
            );
        int classDim = logits.Rank == 1 ? 0 : 1,
            c = logits.Shape[classDim];
        using var logp = LogSoftmax(logits, classDim);
        using var kept = Ops.MulScalar(probabilities, 1 - labelSmoothing);
        using var t = Ops.AddScalar(kept, labelSmoothing / c);
        using var prod = Ops.Mul(logp, t);
        using var scaled = weight == null ? Ops.Identity(prod) : Ops.Mul(prod, ClassAxis(weight, logits.Rank));
        using var sum = Ops.Sum(scaled, [classDim]);
        using var per = Ops.Neg(sum);
        if (reduction != Reduction.Mean)
            return Reduced(per, reduction);
        using var total = Ops.Sum(per);
        return Ops.MulScalar(total, 1.0 / Math.Max(1, logits.Rank == 1 ? 1 : logits.Shape[0]));
    }

    /// <summary>torch.nn.functional.margin_ranking_loss: max(0, −y·(x1 − x2) + margin), y = ±1.</summary>
    public static Tensor MarginRankingLoss(
        Tensor x1,
        Tensor x2,
        Tensor y,
        double margin = 0,
        Reduction reduction = Reduction.Mean
    )
    {
        ArgumentNullException.ThrowIfNull(y);
        using var d = Ops.Sub(x1, x2);
        using var yd = Ops.Mul(y, d);
        using var m = Ops.RSubScalar(margin, yd);
        using var loss = Ops.Relu(m);
        return Reduced(loss, reduction);
    }

    /// <summary>torch.nn.functional.cosine_embedding_loss over rows of x1, x2 [N, D] (or [D]): 1 − cos where y = 1,
    /// max(0, cos − margin) where y = −1, with PyTorch's cos = Σx1x2 / √((Σx1² + 1e-12)(Σx2² + 1e-12)).</summary>
    public static Tensor CosineEmbeddingLoss(
        Tensor x1,
        Tensor x2,
        Tensor y,
        double margin = 0,
        Reduction reduction = Reduction.Mean
    )
    {
        ArgumentNullException.ThrowIfNull(x1);
        ArgumentNullException.ThrowIfNull(x2);
        ArgumentNullException.ThrowIfNull(y);
        int dim = x1.Rank - 1;
        using var prod = Ops.Mul(x1, x2);
        using var dot = Ops.Sum(prod, [dim]);
        using var s1 = Ops.Mul(x1, x1);
        using var s2 = Ops.Mul(x2, x2);
        using var n1 = Ops.Sum(s1, [dim]);
        using var n2 = Ops.Sum(s2, [dim]);
        using var e1 = Ops.AddScalar(n1, 1e-12);
        using var e2 = Ops.AddScalar(n2, 1e-12);
        using var mag = Ops.Mul(e1, e2);
        using var root = Ops.Sqrt(mag);
        using var cos = Ops.Div(dot, root);
        using var pos = Ops.RSubScalar(1, cos);
        using var shifted = Ops.AddScalar(cos, -margin);
        using var neg = Ops.Relu(shifted);
        using var one = Tensor.Scalar(1, y.DType);
        using var isPos = Ops.Eq(y, one);
        using var loss = Ops.Where(isPos, pos, neg);
        return Reduced(loss, reduction);
    }

    /// <summary>The class weights shaped to broadcast along dim 1 (dim 0 for a single row).</summary>
    private static Tensor ClassAxis(Tensor weight, int rank)
    {
        var shape = Enumerable.Repeat(1, Math.Max(rank, 1)).ToArray();
        shape[rank <= 1 ? 0 : 1] = weight.NumEl;
        return Ops.Reshape(weight, shape);
    }

    /// <summary>Logits as rows [M, C] and int64 targets [M]: [C] becomes one row; [N, C, d...] moves C last.</summary>
    private static (Tensor Rows, Tensor Target) ClassRows(string op, Tensor logits, Tensor target)
    {
        if (logits.Rank == 1)
            return (Ops.Reshape(logits, 1, -1), Ops.Reshape(target, 1));
        if (logits.Rank == 2)
            return (Ops.Identity(logits), Ops.Reshape(target, -1));
        int c = logits.Shape[1];
        var perm = new[] { 0 }.Concat(Enumerable.Range(2, logits.Rank - 2)).Append(1).ToArray();
        using var moved = Ops.Permute(logits, perm);
        if (target.NumEl * c != logits.NumEl)
            throw ShapeMismatchException.For(
                op,
                "targets must have the logits' shape without the class dim",
                logits,
                target
            );
        return (Ops.Reshape(moved, -1, c), Ops.Reshape(target, -1));
    }
}
