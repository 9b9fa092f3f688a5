namespace HpcEngine;

/// <summary>Element-wise losses beside cross-entropy and MSE, composed of the engine's primitives with PyTorch's
/// formulas and defaults: L1, smooth L1, Huber, binary cross-entropy (on probabilities, and on logits with a
/// positive-class weight), and KL divergence (target as probabilities or as log-probabilities).</summary>
public static partial class F
{
    /// <summary>Mean (or sum) absolute error (torch.nn.functional.l1_loss).</summary>
    public static Tensor L1Loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
    {
        using var d = Diff("l1_loss", input, target);
        using var a = Ops.Abs(d);
        return Reduced(a, reduction);
    }

    /// <summary>Smooth L1: ½d²/β where |d| &lt; β, |d| − β/2 elsewhere (torch.nn.functional.smooth_l1_loss).</summary>
    public static Tensor SmoothL1Loss(
        Tensor input,
        Tensor target,
        Reduction reduction = Reduction.Mean,
        double beta = 1.0
    )
    {
        if (beta <= 0)
            return L1Loss(input, target, reduction); // PyTorch: beta 0 is L1
        using var d = Diff("smooth_l1_loss", input, target);
        using var a = Ops.Abs(d);
        using var inside = Ops.LtScalar(a, beta);
        using var sq = Ops.Mul(d, d);
        using var quad = Ops.MulScalar(sq, 0.5 / beta);
        using var lin = Ops.AddScalar(a, -0.5 * beta);
        using var per = Ops.Where(inside, quad, lin);
        return Reduced(per, reduction);
    }

    /// <summary>Huber: ½d² where |d| &lt; δ, δ(|d| − δ/2) elsewhere (torch.nn.functional.huber_loss).</summary>
    public static Tensor HuberLoss(
        Tensor input,
        Tensor target,
        Reduction reduction = Reduction.Mean,
        double delta = 1.0
    )
    {
        if (delta <= 0)
            throw new ArgumentOutOfRangeException(nameof(delta), $"huber_loss: delta must be positive, got {delta}");
        using var d = Diff("huber_loss", input, target);
        using var a = Ops.Abs(d);
        using var inside = Ops.LtScalar(a, delta);
        using var sq = Ops.Mul(d, d);
        using var quad = Ops.MulScalar(sq, 0.5);
        using var shifted = Ops.AddScalar(a, -0.5 * delta);
        using var lin = Ops.MulScalar(shifted, delta);
        using var per = Ops.Where(inside, quad, lin);
        return Reduced(per, reduction);
    }

    /// <summary>Binary cross-entropy on probabilities: −(y log p + (1 − y) log(1 − p)), each log clamped at −100 as
    /// PyTorch does, optionally weighted per element (torch.nn.functional.binary_cross_entropy).</summary>
    public static Tensor BinaryCrossEntropy(
        Tensor input,
        Tensor target,
        Tensor? weight = null,
        Reduction reduction = Reduction.Mean
    )
    {
        using var _ = Diff("binary_cross_entropy", input, target);
        using var logP = Ops.Log(input);
        using var logPc = Ops.Clamp(logP, min: -100);
        using var q = Ops.RSubScalar(1, input);
        using var logQ = Ops.Log(q);
        using var logQc = Ops.Clamp(logQ, min: -100);
        using var yc = Ops.RSubScalar(1, target);
        using var a = Ops.Mul(target, logPc);
        using var b = Ops.Mul(yc, logQc);
        using var s = Ops.Add(a, b);
        using var per = Ops.Neg(s);
        using var weighted = weight != null ? Ops.Mul(per, weight) : Ops.Identity(per);
        return Reduced(weighted, reduction);
    }

    /// <summary>Binary cross-entropy on logits, in the stable form PyTorch uses: (1 − y)x + (1 + (w − 1)y)(log(1 +
    /// e^−|x|) + max(−x, 0)), with <paramref name="posWeight"/> w (broadcast over the last dimension) weighting the
    /// positive class (torch.nn.functional.binary_cross_entropy_with_logits).</summary>
    public static Tensor BinaryCrossEntropyWithLogits(
        Tensor input,
        Tensor target,
        Tensor? weight = null,
        Tensor? posWeight = null,
        Reduction reduction = Reduction.Mean
    )
    {
        using var _ = Diff("binary_cross_entropy_with_logits", input, target);
        using var abs = Ops.Abs(input);
        using var negAbs = Ops.Neg(abs);
        using var e = Ops.Exp(negAbs);
        using var l = Ops.Log1p(e);
        using var negX = Ops.Neg(input);
        using var relu = Ops.Clamp(negX, min: 0);
        using var soft = Ops.Add(l, relu);
        using var yc = Ops.RSubScalar(1, target);
        using var lin = Ops.Mul(yc, input);
        Tensor scaled;
        if (posWeight != null)
        {
            using var pw1 = Ops.AddScalar(posWeight, -1);
            using var py = Ops.Mul(pw1, target);
            using var coef = Ops.AddScalar(py, 1);
            scaled = Ops.Mul(coef, soft);
        }
        else
            scaled = Ops.Identity(soft);
        using (scaled)
        using (var per = Ops.Add(lin, scaled))
        using (var weighted = weight != null ? Ops.Mul(per, weight) : Ops.Identity(per))
            return Reduced(weighted, reduction);
    }

    /// <summary>KL divergence with <paramref name="input"/> as log-probabilities: target · (log target − input), 0
    /// where the target is 0; with <paramref name="logTarget"/> the target is log-probabilities too: e^t · (t −
    /// input) (torch.nn.functional.kl_div; its default "mean" averages over every element).</summary>
    public static Tensor KlDiv(
        Tensor input,
        Tensor target,
        Reduction reduction = Reduction.Mean,
        bool logTarget = false
    )
    {
        using var _ = Diff("kl_div", input, target);
        if (logTarget)
        {
            using var p = Ops.Exp(target);
            using var d = Ops.Sub(target, input);
            using var per = Ops.Mul(p, d);
            return Reduced(per, reduction);
        }
        // The log of the clamped target is finite where the target is 0, so that element is 0 · finite = 0.
        using var safe = Ops.Clamp(target, min: double.Epsilon);
        using var logT = Ops.Log(safe);
        using var diff = Ops.Sub(logT, input);
        using var perElement = Ops.Mul(target, diff);
        return Reduced(perElement, reduction);
    }

    /// <summary>input − target, checking the shapes match (the element-wise losses take no broadcasting).</summary>
    private static Tensor Diff(string op, Tensor input, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(target);
        if (!input.Shape.SequenceEqual(target.Shape))
            throw ShapeMismatchException.For(op, "input and target must have the same shape", input, target);
        return Ops.Sub(input, target);
    }

    private static Tensor Reduced(Tensor perElement, Reduction reduction) =>
        reduction switch
        {
            Reduction.Mean => Ops.Mean(perElement),
            Reduction.Sum => Ops.Sum(perElement),
            _ => Ops.Identity(perElement),
        };
}
