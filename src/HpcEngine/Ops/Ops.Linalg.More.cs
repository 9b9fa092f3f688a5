namespace HpcEngine;

/// <summary>Small linear-algebra composites of torch over matmul, broadcasting and the norms: baddbmm, kron, cdist,
/// and the matrix norms that need no decomposition (Frobenius, 1, −1, ∞, −∞).</summary>
public static partial class Ops
{
    /// <summary>torch.baddbmm: β · input + α · (b1 @ b2) for batches b1 [B, n, m], b2 [B, m, p]; with β = 0 the input
    /// is not read.</summary>
    public static Tensor Baddbmm(Tensor input, Tensor batch1, Tensor batch2, double beta = 1, double alpha = 1)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(batch1);
        ArgumentNullException.ThrowIfNull(batch2);
        if (batch1.Rank != 3 || batch2.Rank != 3)
            throw ShapeMismatchException.For(
                "baddbmm",
                "batch1 and batch2 must be 3-D [B, n, m], [B, m, p]",
                batch1,
                batch2
            );
        return ScaledSum(input, MatMul(batch1, batch2), beta, alpha);
    }

    /// <summary>torch.kron: the Kronecker product; the lower-rank operand gains leading size-1 dims.</summary>
    public static Tensor Kron(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        int rank = Math.Max(a.Rank, b.Rank);
        var sa = Enumerable.Repeat(1, rank - a.Rank).Concat(a.ShapeArray).ToArray();
        var sb = Enumerable.Repeat(1, rank - b.Rank).Concat(b.ShapeArray).ToArray();
        // a as [a0, 1, a1, 1, ...] times b as [1, b0, 1, b1, ...], then each pair of dims merged.
        var ia = new int[2 * rank];
        var ib = new int[2 * rank];
        var result = new int[rank];
        for (int d = 0; d < rank; d++)
        {
            (ia[2 * d], ia[2 * d + 1]) = (sa[d], 1);
            (ib[2 * d], ib[2 * d + 1]) = (1, sb[d]);
            result[d] = sa[d] * sb[d];
        }
        using var av = Reshape(a, ia);
        using var bv = Reshape(b, ib);
        using var outer = Mul(av, bv);
        return Reshape(outer, result);
    }

    /// <summary>torch.cdist: the p-norm distance between every row of x1 [.., P, M] and every row of x2 [.., R, M]:
    /// [.., P, R]. At zero distance the gradient is 0 (the norms' subgradient), never NaN.</summary>
    public static Tensor Cdist(Tensor x1, Tensor x2, double p = 2)
    {
        ArgumentNullException.ThrowIfNull(x1);
        ArgumentNullException.ThrowIfNull(x2);
        if (x1.Rank < 2 || x2.Rank < 2 || x1.Shape[^1] != x2.Shape[^1])
            throw ShapeMismatchException.For("cdist", "x1 [.., P, M] and x2 [.., R, M] need the same M", x1, x2);
        if (p < 0)
            throw new ArgumentOutOfRangeException(nameof(p), $"cdist: p must be non-negative, got {p}");
        using var a = Unsqueeze(x1, -2);
        using var b = Unsqueeze(x2, -3);
        using var diff = Sub(a, b);
        return VectorNorm(diff, p, [-1]);
    }

    /// <summary>torch.linalg.matrix_norm over the last two dims: "fro" (Frobenius), or ord 1 / −1 (largest /
    /// smallest column abs-sum), ∞ / −∞ (largest / smallest row abs-sum). The nuclear and spectral norms need an
    /// SVD, which the engine does not have: they are refused by name.</summary>
    public static Tensor MatrixNorm(Tensor x, string ord = "fro", bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 2)
            throw new ShapeMismatchException(
                $"matrix_norm: needs a matrix (or a batch), got shape {Shapes.Format(x.Shape)}"
            );
        int r = x.Rank;
        if (ord == "fro")
            return VectorNorm(x, 2, [r - 2, r - 1], keepDim);
        if (ord is "nuc" or "2" or "-2")
            throw new ArgumentException(
                $"matrix_norm: ord '{ord}' needs singular values, which the engine does not compute; use 'fro', 1, -1, inf or -inf",
                nameof(ord)
            );
        (int sumDim, bool largest) = ord switch
        {
            "1" => (r - 2, true),
            "-1" => (r - 2, false),
            "inf" => (r - 1, true),
            "-inf" => (r - 1, false),
            _ => throw new ArgumentException(
                $"matrix_norm: ord '{ord}' is not one of fro, nuc, 1, -1, 2, -2, inf, -inf",
                nameof(ord)
            ),
        };
        using var abs = Abs(x);
        using var sums = Sum(abs, [sumDim], keepDim: true);
        int other = sumDim == r - 2 ? r - 1 : r - 2;
        using var picked = largest ? Amax(sums, [other], keepDim: true) : Amin(sums, [other], keepDim: true);
        return keepDim ? Identity(picked) : Reshape(picked, x.ShapeArray[..^2]);
    }
}
