namespace HpcEngine;

/// <summary>Normalisations written over the primitives: F.normalize, cosine similarity, RMSNorm, group norm and
/// instance norm (no running statistics). Statistics are the biased ones, as PyTorch's.</summary>
public static partial class F
{
    /// <summary>F.normalize: x / max(‖x‖_p, eps) along <paramref name="dim"/>.</summary>
    public static Tensor Normalize(Tensor x, double p = 2, int dim = 1, double eps = 1e-12)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var norm = Ops.VectorNorm(x, p, [dim], keepDim: true);
        using var floor = Ops.Clamp(norm, min: eps);
        return Ops.Div(x, floor);
    }

    /// <summary>F.cosine_similarity along <paramref name="dim"/> (broadcasting): the dot product of x1 / max(‖x1‖,
    /// eps) and x2 / max(‖x2‖, eps).</summary>
    public static Tensor CosineSimilarity(Tensor x1, Tensor x2, int dim = 1, double eps = 1e-8)
    {
        ArgumentNullException.ThrowIfNull(x1);
        ArgumentNullException.ThrowIfNull(x2);
        using var a = Normalize(x1, 2, dim, eps);
        using var b = Normalize(x2, 2, dim, eps);
        using var ab = Ops.Mul(a, b);
        int rank = Math.Max(x1.Rank, x2.Rank);
        return Ops.Sum(ab, [dim < 0 ? dim + rank : dim]);
    }

    /// <summary>RMSNorm over the trailing dims <paramref name="normalizedShape"/>: x / √(mean(x²) + eps) · weight;
    /// eps defaults to the dtype's machine epsilon, as torch.nn.functional.rms_norm.</summary>
    public static Tensor RmsNorm(Tensor x, int[] normalizedShape, Tensor? weight = null, double? eps = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(normalizedShape);
        int k = normalizedShape.Length;
        if (k == 0 || k > x.Rank || !x.Shape[^k..].SequenceEqual(normalizedShape))
            throw new ShapeMismatchException(
                $"rms_norm: normalized_shape {Shapes.Format(normalizedShape)} must equal the input's trailing dims "
                    + $"(input shape {Shapes.Format(x.Shape)})"
            );
        if (weight != null && !weight.Shape.SequenceEqual(normalizedShape))
            throw new ShapeMismatchException(
                $"rms_norm: weight must have shape {Shapes.Format(normalizedShape)}, got {Shapes.Format(weight.Shape)}"
            );
        double e = eps ?? (x.DType == DType.Float64 ? 2.220446049250313e-16 : 1.1920928955078125e-7);
        var dims = Enumerable.Range(x.Rank - k, k).ToArray();
        using var sq = Ops.Mul(x, x);
        using var ms = Ops.Mean(sq, dims, keepDim: true);
        using var shifted = Ops.AddScalar(ms, e);
        using var inv = Ops.Rsqrt(shifted);
        var y = Ops.Mul(x, inv);
        if (weight == null)
            return y;
        using (y)
            return Ops.Mul(y, weight);
    }

    /// <summary>F.group_norm: the channels of x [N, C, ...] split into <paramref name="numGroups"/> groups, each
    /// sample's group normalised over its channels and positions, then the per-channel affine weight and bias.</summary>
    public static Tensor GroupNorm(
        Tensor x,
        int numGroups,
        Tensor? weight = null,
        Tensor? bias = null,
        double eps = 1e-5
    )
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 2)
            throw new ShapeMismatchException($"group_norm: needs [N, C, ...], got shape {Shapes.Format(x.Shape)}");
        int n = x.Shape[0],
            c = x.Shape[1];
        if (numGroups < 1 || c % numGroups != 0)
            throw new ShapeMismatchException(
                $"group_norm: {c} channels do not split into {numGroups} groups (the groups must divide the channels)"
            );
        foreach (var p in new[] { weight, bias })
            if (p != null && !p.Shape.SequenceEqual([c]))
                throw new ShapeMismatchException(
                    $"group_norm: weight and bias must have shape [{c}], got {Shapes.Format(p.Shape)}"
                );
        using var grouped = Ops.Reshape(x, n, numGroups, -1);
        using var mean = Ops.Mean(grouped, [2], keepDim: true);
        using var variance = Ops.Var(grouped, [2], keepDim: true, correction: 0);
        using var centred = Ops.Sub(grouped, mean);
        using var shifted = Ops.AddScalar(variance, eps);
        using var inv = Ops.Rsqrt(shifted);
        using var normed = Ops.Mul(centred, inv);
        var y = Ops.Reshape(normed, x.ShapeArray);
        int[] channel = [1, c, .. Enumerable.Repeat(1, x.Rank - 2)];
        if (weight != null)
        {
            using var unscaled = y;
            using var w = Ops.Reshape(weight, channel);
            y = Ops.Mul(unscaled, w);
        }
        if (bias != null)
        {
            using var unshifted = y;
            using var b = Ops.Reshape(bias, channel);
            y = Ops.Add(unshifted, b);
        }
        return y;
    }

    /// <summary>F.instance_norm without running statistics: each sample's channel normalised over its positions
    /// (group norm with one channel a group), then the per-channel affine weight and bias.</summary>
    public static Tensor InstanceNorm(Tensor x, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 3)
            throw new ShapeMismatchException(
                $"instance_norm: needs [N, C, positions...], got shape {Shapes.Format(x.Shape)}"
            );
        return GroupNorm(x, x.Shape[1], weight, bias, eps);
    }
}
