namespace HpcEngine;

/// <summary>Shape arithmetic shared by every op: element counts, strides, broadcasting, dimension checks.</summary>
internal static class Shapes
{
    /// <summary>Formats a shape the way PyTorch prints it: [2, 3].</summary>
    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    /// <summary>Element count, checked: the engine indexes elements with 32-bit integers.</summary>
    public static int NumEl(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0)
                throw new ShapeMismatchException($"shape {Format(shape)} has a negative dimension");
            n *= d;
            if (n > int.MaxValue)
                throw new ShapeMismatchException(
                    $"shape {Format(shape)} has more than {int.MaxValue} elements, the engine's limit per tensor"
                );
        }
        return (int)n;
    }

    /// <summary>Row-major (C-order) strides for <paramref name="shape"/>.</summary>
    public static int[] ContiguousStrides(ReadOnlySpan<int> shape)
    {
        var s = new int[shape.Length];
        int acc = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            s[i] = acc;
            acc *= Math.Max(shape[i], 1);
        }
        return s;
    }

    /// <summary>NumPy broadcasting: align from the right; each pair of dims must be equal or one of them 1.</summary>
    public static int[] Broadcast(string op, ReadOnlySpan<int> a, ReadOnlySpan<int> b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var r = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            int db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da != db && da != 1 && db != 1)
                throw new ShapeMismatchException(
                    $"{op}: shapes {Format(a)} and {Format(b)} do not broadcast (dimension {i} from the left of the "
                        + $"aligned shape: {da} vs {db}; each pair must be equal or one of them 1)"
                );
            r[i] = da == 1 ? db : da;
        }
        return r;
    }

    /// <summary>Strides that read a tensor of <paramref name="shape"/>/<paramref name="strides"/> as if it had
    /// the broadcast shape <paramref name="target"/> (stride 0 on broadcast dims).</summary>
    public static int[] BroadcastStrides(ReadOnlySpan<int> shape, ReadOnlySpan<int> strides, ReadOnlySpan<int> target)
    {
        var r = new int[target.Length];
        int off = target.Length - shape.Length;
        for (int i = 0; i < shape.Length; i++)
            r[i + off] = shape[i] == 1 && target[i + off] != 1 ? 0 : strides[i];
        return r;
    }

    /// <summary>Wraps a possibly negative dim into [0, rank) or throws naming the op.</summary>
    public static int NormalizeDim(string op, int dim, int rank)
    {
        int r = Math.Max(rank, 1);
        if (dim < -r || dim >= r)
            throw new ArgumentOutOfRangeException(
                nameof(dim),
                $"{op}: dim {dim} is out of range for a tensor of rank {rank} (expected [-{r}, {r - 1}])"
            );
        return dim < 0 ? dim + r : dim;
    }

    public static bool SequenceEqual(ReadOnlySpan<int> a, ReadOnlySpan<int> b) => a.SequenceEqual(b);
}
