using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>The reductions of torch written over the primitive ones: amax / amin over several dims (the gradient split
/// evenly over ties, as PyTorch's), count_nonzero, any / all, nansum / nanmean and vector norms of any order.</summary>
public static partial class Ops
{
    /// <summary>The largest value over <paramref name="dims"/> (all when null); NaN wins, as in PyTorch; the gradient
    /// is split evenly over the elements equal to the maximum.</summary>
    public static Tensor Amax(Tensor x, int[]? dims = null, bool keepDim = false) =>
        Extreme(ReduceKind.Max, "amax", x, dims, keepDim);

    /// <summary>The smallest value over <paramref name="dims"/> (all when null), ties as <see cref="Amax"/>.</summary>
    public static Tensor Amin(Tensor x, int[]? dims = null, bool keepDim = false) =>
        Extreme(ReduceKind.Min, "amin", x, dims, keepDim);

    private static Tensor Extreme(ReduceKind op, string name, Tensor x, int[]? dims, bool keepDim)
    {
        ArgumentNullException.ThrowIfNull(x);
        var d = ReduceDims(name, dims, x.Rank);
        foreach (int k in d)
            if (x.Shape[k] == 0)
                throw new ShapeMismatchException(
                    $"{name}: dim {k} of shape {Shapes.Format(x.Shape)} is empty; there is nothing to reduce"
                );
        var (v, idx) = ReduceNoGrad(op, name, x, d, keepDim);
        idx?.Dispose();
        if (!Recorder.Needs(x))
            return v;
        var shape = x.ShapeArray;
        return Recorder.Record(v, name, [x], [x, v], (g, s) =>
        {
            using var vb = Unreduce(s[1], shape, d, keepDim);
            using var hit = Eq(s[0], vb);
            using var m = To(hit, g.DType);
            using var count = Sum(m, d, keepDim: true);
            using var gb = Unreduce(g, shape, d, keepDim);
            using var share = Div(gb, count);
            return [Mul(m, share)];
        });
    }

    /// <summary>How many elements are not zero over <paramref name="dims"/> (all when null), as int64.</summary>
    public static Tensor CountNonzero(Tensor x, int[]? dims = null) => Nonzeros(x, dims, keepDim: false);

    private static Tensor Nonzeros(Tensor x, int[]? dims, bool keepDim)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var zero = EqScalar(x, 0);
        using var nonzero = LogicalNot(zero);
        using var n = To(nonzero, DType.Int64);
        return Sum(n, dims, keepDim);
    }

    /// <summary>Whether any element over <paramref name="dims"/> (all when null) is nonzero (bool).</summary>
    public static Tensor Any(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        using var n = Nonzeros(x, dims, keepDim);
        return GtScalar(n, 0);
    }

    /// <summary>Whether every element over <paramref name="dims"/> (all when null) is nonzero (bool; true over an
    /// empty dim, as PyTorch's).</summary>
    public static Tensor All(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        using var n = Nonzeros(x, dims, keepDim);
        long size = ReduceDims("all", dims, x.Rank).Aggregate(1L, (p, k) => p * x.Shape[k]);
        return EqScalar(n, size);
    }

    /// <summary>Sum over <paramref name="dims"/> with NaNs counted as zero (gradient 0 at a NaN).</summary>
    public static Tensor NanSum(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var nan = IsNan(x);
        using var clean = MaskedFill(x, nan, 0);
        return Sum(clean, dims, keepDim);
    }

    /// <summary>Mean over <paramref name="dims"/> of the elements that are not NaN (NaN where all are).</summary>
    public static Tensor NanMean(Tensor x, int[]? dims = null, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var sum = NanSum(x, dims, keepDim);
        using var nan = IsNan(x);
        using var kept = LogicalNot(nan);
        using var k = To(kept, x.DType);
        using var count = Sum(k, dims, keepDim);
        return Div(sum, count);
    }

    /// <summary>torch.linalg.vector_norm: (Σ|x|^ord)^(1/ord) over <paramref name="dims"/> (all when null); ord ∞ is
    /// max |x|, −∞ min |x|, 0 the count of nonzeros. At an all-zero vector the gradient is 0 (PyTorch's subgradient),
    /// never NaN.</summary>
    public static Tensor VectorNorm(Tensor x, double ord = 2, int[]? dims = null, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.DType.IsFloating())
            throw Unsupported("vector_norm", x.DType, "a floating dtype");
        if (double.IsNaN(ord))
            throw new ArgumentException("vector_norm: ord is NaN", nameof(ord));
        if (ord is 1 or 2 or double.PositiveInfinity)
            return Norm(x, ord, dims, keepDim);
        using var a = Abs(x);
        if (ord == double.NegativeInfinity)
            return Amin(a, dims, keepDim);
        if (ord == 0)
        {
            using var n = Nonzeros(x, dims, keepDim);
            return To(n, x.DType);
        }
        // Zeros are kept out of |x|^ord's derivative (infinite for ord < 1) and of the root's at a zero sum; for a
        // negative order a zero element makes the sum infinite and the norm 0, as in PyTorch.
        using var zero = EqScalar(a, 0);
        using var safe = ord > 0 ? MaskedFill(a, zero, 1) : Identity(a);
        using var powered = Pow(safe, ord);
        using var terms = ord > 0 ? MaskedFill(powered, zero, 0) : Identity(powered);
        using var sum = Sum(terms, dims, keepDim);
        using var empty = EqScalar(sum, 0);
        using var safeSum = MaskedFill(sum, empty, 1);
        using var root = Pow(safeSum, 1 / ord);
        return MaskedFill(root, empty, 0);
    }
}
