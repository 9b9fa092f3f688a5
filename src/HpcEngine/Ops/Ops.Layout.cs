namespace HpcEngine;

/// <summary>Layout ops of torch written over the movement primitives: flip, roll, repeat, tril / triu; and the small
/// linear-algebra composites outer and addmm. Each differentiates through the primitives it is made of.</summary>
public static partial class Ops
{
    /// <summary>torch.flip: the order of the elements reversed along each of <paramref name="dims"/> (a copy).</summary>
    public static Tensor Flip(Tensor x, params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(dims);
        var reversed = dims.Length == 0 ? [] : ReduceDims("flip", dims, x.Rank).Where(d => x.Shape[d] > 1).ToArray();
        if (reversed.Length == 0)
            return Clone(x);
        var y = Identity(x);
        foreach (int dim in reversed)
        {
            int n = x.Shape[dim];
            using var host = Tensor.FromArray(Enumerable.Range(0, n).Select(i => (long)(n - 1 - i)).ToArray(), n);
            using var index = host.To(x.Device);
            using var before = y;
            y = IndexSelect(before, dim, index);
        }
        return y;
    }

    /// <summary>torch.roll over the flattened tensor: every element moves <paramref name="shift"/> places on, those
    /// past the end coming round to the start.</summary>
    public static Tensor Roll(Tensor x, int shift)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var flat = Reshape(x, -1);
        using var rolled = Roll(flat, [shift], [0]);
        return Reshape(rolled, x.ShapeArray);
    }

    /// <summary>torch.roll along dims: along <c>dims[i]</c> every element moves <c>shifts[i]</c> places on
    /// (negative: back), wrapping round.</summary>
    public static Tensor Roll(Tensor x, int[] shifts, int[] dims)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(shifts);
        ArgumentNullException.ThrowIfNull(dims);
        if (shifts.Length != dims.Length)
            throw new ArgumentException(
                $"roll: {shifts.Length} shift(s) for {dims.Length} dim(s): give one shift per dim",
                nameof(shifts)
            );
        var y = Identity(x);
        for (int i = 0; i < dims.Length; i++)
        {
            int dim = Shapes.NormalizeDim("roll", dims[i], x.Rank),
                n = x.Shape[dim];
            if (n == 0)
                continue;
            int s = ((shifts[i] % n) + n) % n;
            if (s == 0)
                continue;
            using var before = y;
            using var tail = Narrow(before, dim, n - s, s);
            using var head = Narrow(before, dim, 0, n - s);
            y = Cat([tail, head], dim);
        }
        return y;
    }

    /// <summary>torch.Tensor.repeat: the tensor tiled <c>repeats[i]</c> times along each dim; more repeats than dims
    /// add leading dims.</summary>
    public static Tensor Repeat(Tensor x, params int[] repeats)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(repeats);
        if (repeats.Length < x.Rank)
            throw new ShapeMismatchException(
                $"repeat: {repeats.Length} repeat count(s) for a {x.Rank}-d tensor: give at least one per dim"
            );
        if (repeats.Any(r => r < 0))
            throw new ArgumentException($"repeat: counts {Shapes.Format(repeats)} must be 0 or more", nameof(repeats));
        int lead = repeats.Length - x.Rank;
        int[] shape = [.. Enumerable.Repeat(1, lead), .. x.ShapeArray];
        // [s0, s1, ...] → [1, s0, 1, s1, ...] → expanded to [r0, s0, r1, s1, ...] → [r0·s0, r1·s1, ...]
        var spread = shape.SelectMany(s => new[] { 1, s }).ToArray();
        var tiled = shape.SelectMany((s, i) => new[] { repeats[i], s }).ToArray();
        using var a = Reshape(x, spread);
        using var b = Expand(a, tiled);
        return Reshape(b, shape.Select((s, i) => s * repeats[i]).ToArray());
    }

    /// <summary>torch.tril: the lower triangle of the last two dims (elements with column − row ≤
    /// <paramref name="diagonal"/>), the rest zero.</summary>
    public static Tensor Tril(Tensor x, int diagonal = 0) => Triangle(x, diagonal, lower: true);

    /// <summary>torch.triu: the upper triangle of the last two dims (column − row ≥ <paramref name="diagonal"/>), the
    /// rest zero.</summary>
    public static Tensor Triu(Tensor x, int diagonal = 0) => Triangle(x, diagonal, lower: false);

    private static Tensor Triangle(Tensor x, int diagonal, bool lower)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 2)
            throw new ShapeMismatchException(
                $"{(lower ? "tril" : "triu")}: needs a matrix or a batch of them, got shape {Shapes.Format(x.Shape)}"
            );
        int rows = x.Shape[^2],
            cols = x.Shape[^1];
        var keep = new bool[rows * cols];
        for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            keep[i * cols + j] = lower ? j - i <= diagonal : j - i >= diagonal;
        using var mask = Tensor.FromArray(keep, rows, cols);
        using var onDevice = mask.To(x.Device);
        using var zero = Tensor.Scalar(0, x.DType);
        return Where(onDevice, x, zero);
    }

    /// <summary>torch.outer: a[i] · b[j] of two vectors.</summary>
    public static Tensor Outer(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Rank != 1 || b.Rank != 1)
            throw new ShapeMismatchException(
                $"outer: needs two vectors, got shapes {Shapes.Format(a.Shape)} and {Shapes.Format(b.Shape)}"
            );
        using var col = Unsqueeze(a, 1);
        using var row = Unsqueeze(b, 0);
        return Mul(col, row);
    }

    /// <summary>torch.addmm: β · input + α · (m1 @ m2), input broadcast to the product's shape; with β = 0 the input
    /// is not read (its NaNs do not propagate, as in PyTorch).</summary>
    public static Tensor Addmm(Tensor input, Tensor m1, Tensor m2, double beta = 1, double alpha = 1)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (m1?.Rank != 2 || m2?.Rank != 2)
            throw new ShapeMismatchException("addmm: m1 and m2 must be matrices");
        return ScaledSum(input, MatMul(m1, m2), beta, alpha);
    }

    /// <summary>β · input + α · product (taking the product); with β = 0 the input is not read (its NaNs do not
    /// propagate, as in PyTorch's addmm and baddbmm).</summary>
    private static Tensor ScaledSum(Tensor input, Tensor product, double beta, double alpha)
    {
        if (alpha != 1)
        {
            using var unscaled = product;
            product = MulScalar(unscaled, alpha);
        }
        if (beta == 0)
            return product;
        using (product)
        {
            using var bias = beta == 1 ? Identity(input) : MulScalar(input, beta);
            return Add(bias, product);
        }
    }
}
