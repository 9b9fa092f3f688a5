namespace HpcEngine;

/// <summary>F.pad and F.interpolate written over the movement primitives: every padding mode and every resampling is
/// an index_select of computed source positions (and, for the linear modes, a blend of two), so every backend runs
/// them and the gradient is the index_select's scatter-add.</summary>
public static partial class F
{
    /// <summary>F.pad: <paramref name="pad"/> lists (before, after) amounts from the last dim backwards, as PyTorch's
    /// (left, right, top, bottom, ...). Modes: constant (<paramref name="value"/>; a negative amount crops), reflect
    /// (mirror without repeating the edge; amounts below the dim's size), replicate (the edge repeated), circular
    /// (wrap round; amounts at most the dim's size).</summary>
    public static Tensor Pad(Tensor x, int[] pad, string mode = "constant", double value = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(pad);
        if (pad.Length % 2 != 0 || pad.Length / 2 > x.Rank)
            throw new ArgumentException(
                $"pad: {pad.Length} amounts for a {x.Rank}-d tensor: give (before, after) pairs for at most {x.Rank} dims",
                nameof(pad)
            );
        if (mode is not ("constant" or "reflect" or "replicate" or "circular"))
            throw new ArgumentException(
                $"pad: mode '{mode}' is not one of constant, reflect, replicate, circular",
                nameof(mode)
            );
        var y = Ops.Identity(x);
        for (int k = 0; k < pad.Length / 2; k++)
        {
            int dim = x.Rank - 1 - k,
                lo = pad[2 * k],
                hi = pad[2 * k + 1];
            if (lo == 0 && hi == 0)
                continue;
            using var before = y;
            y = mode == "constant" ? PadConstant(before, dim, lo, hi, value) : PadByIndex(before, dim, lo, hi, mode);
        }
        return y;
    }

    private static Tensor PadConstant(Tensor x, int dim, int lo, int hi, double value)
    {
        int n = x.Shape[dim];
        if (n + lo + hi < 0)
            throw new ArgumentException($"pad: ({lo}, {hi}) crops more than dim {dim}'s {n} elements");
        // Negative amounts crop first; positive ones add blocks of the value.
        int start = Math.Max(0, -lo),
            keep = n - start - Math.Max(0, -hi);
        var parts = new List<Tensor>();
        try
        {
            Tensor Block(int size)
            {
                var shape = x.ShapeArray;
                shape[dim] = size;
                using var host = Tensor.Full(shape, value, x.DType);
                return host.To(x.Device);
            }
            if (lo > 0)
                parts.Add(Block(lo));
            parts.Add(Ops.Narrow(x, dim, start, Math.Max(0, keep)));
            if (hi > 0)
                parts.Add(Block(hi));
            return parts.Count == 1 ? Ops.Identity(parts[0]) : Ops.Cat(parts, dim);
        }
        finally
        {
            foreach (var p in parts)
                p.Dispose();
        }
    }

    private static Tensor PadByIndex(Tensor x, int dim, int lo, int hi, string mode)
    {
        int n = x.Shape[dim];
        if (lo < 0 || hi < 0)
            throw new ArgumentException($"pad: {mode} padding takes amounts of 0 or more, got ({lo}, {hi})");
        if (mode == "reflect" && (lo >= n || hi >= n))
            throw new ArgumentException(
                $"pad: reflect padding ({lo}, {hi}) must be below dim {dim}'s size {n} (the edge is not repeated)"
            );
        if (mode == "circular" && (lo > n || hi > n))
            throw new ArgumentException($"pad: circular padding ({lo}, {hi}) must be at most dim {dim}'s size {n}");
        if (n == 0)
            throw new ArgumentException($"pad: {mode} padding of an empty dim {dim}");
        var index = new long[lo + n + hi];
        for (int i = 0; i < index.Length; i++)
        {
            int src = i - lo;
            index[i] = mode switch
            {
                "reflect" => src < 0 ? -src
                : src >= n ? 2 * (n - 1) - src
                : src,
                "replicate" => Math.Clamp(src, 0, n - 1),
                _ => ((src % n) + n) % n,
            };
        }
        return Select(x, dim, index);
    }

    /// <summary>index_select of <paramref name="x"/> along <paramref name="dim"/> by host positions.</summary>
    private static Tensor Select(Tensor x, int dim, long[] positions)
    {
        using var host = Tensor.FromArray(positions, positions.Length);
        using var index = host.To(x.Device);
        return Ops.IndexSelect(x, dim, index);
    }

    /// <summary>F.interpolate of x [N, C, spatial...] to <paramref name="size"/> (or the spatial sizes times
    /// <paramref name="scaleFactor"/>, floored; source positions then use 1 / scale, as PyTorch's). Modes: nearest
    /// (floor(dst · scale)), linear (1 spatial dim), bilinear (2); <paramref name="alignCorners"/> maps the corner
    /// pixels' centres onto each other, otherwise pixel centres (half-pixel) are mapped and clamped at 0.</summary>
    public static Tensor Interpolate(
        Tensor x,
        int[]? size = null,
        double[]? scaleFactor = null,
        string mode = "nearest",
        bool? alignCorners = null
    )
    {
        ArgumentNullException.ThrowIfNull(x);
        int spatial = x.Rank - 2;
        if (spatial < 1)
            throw new ShapeMismatchException(
                $"interpolate: needs [N, C, spatial...], got shape {Shapes.Format(x.Shape)}"
            );
        int expected = mode switch
        {
            "nearest" => spatial,
            "linear" => 1,
            "bilinear" => 2,
            _ => throw new ArgumentException(
                $"interpolate: mode '{mode}' is not one of nearest, linear, bilinear",
                nameof(mode)
            ),
        };
        if (spatial != expected)
            throw new ShapeMismatchException(
                $"interpolate: {mode} needs {expected} spatial dim(s), got shape {Shapes.Format(x.Shape)}"
            );
        if (mode == "nearest" && alignCorners != null)
            throw new ArgumentException("interpolate: align_corners applies to the linear modes only, not nearest");
        if ((size == null) == (scaleFactor == null))
            throw new ArgumentException("interpolate: give either size or scale_factor, not both or neither");
        var given = size ?? [];
        if (size != null && size.Length != spatial)
            throw new ArgumentException($"interpolate: size {Shapes.Format(size)} for {spatial} spatial dim(s)");
        if (scaleFactor != null && scaleFactor.Length != spatial)
            throw new ArgumentException(
                $"interpolate: {scaleFactor.Length} scale factor(s) for {spatial} spatial dim(s)"
            );
        var y = Ops.Identity(x);
        for (int k = 0; k < spatial; k++)
        {
            int dim = 2 + k,
                n = x.Shape[dim];
            int m = size != null ? given[k] : (int)Math.Floor(n * scaleFactor![k]);
            if (m < 1)
                throw new ArgumentException($"interpolate: output size {m} of spatial dim {k} must be at least 1");
            double scale = scaleFactor != null ? 1 / scaleFactor[k] : n / (double)m;
            using var before = y;
            y =
                mode == "nearest"
                    ? Nearest(before, dim, n, m, scale)
                    : Linear(before, dim, n, m, scale, alignCorners ?? false);
        }
        return y;
    }

    private static Tensor Nearest(Tensor x, int dim, int n, int m, double scale)
    {
        var index = new long[m];
        for (int i = 0; i < m; i++)
            index[i] = Math.Min((long)Math.Floor(i * (float)scale), n - 1);
        return Select(x, dim, index);
    }

    private static Tensor Linear(Tensor x, int dim, int n, int m, double scale, bool alignCorners)
    {
        var lo = new long[m];
        var hi = new long[m];
        var w = new double[m];
        for (int i = 0; i < m; i++)
        {
            double src = alignCorners
                ? (m > 1 ? i * (n - 1) / (double)(m - 1) : 0)
                : Math.Max(0, (i + 0.5) * scale - 0.5);
            long i0 = Math.Min((long)Math.Floor(src), n - 1);
            lo[i] = i0;
            hi[i] = Math.Min(i0 + 1, n - 1);
            w[i] = src - i0;
        }
        using var a = Select(x, dim, lo);
        using var b = Select(x, dim, hi);
        var shape = Enumerable.Repeat(1, x.Rank).ToArray();
        shape[dim] = m;
        using var hostW = Tensor.FromArray(w, shape);
        using var cast = hostW.To(x.DType);
        using var weight = cast.To(x.Device);
        return Ops.Lerp(a, b, weight);
    }
}
