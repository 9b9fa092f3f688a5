using HpcEngine.Autograd;

namespace HpcEngine;

// Views: reshape, flatten, permute, transpose, slice, select, expand, squeeze — no data is copied where strides allow.
public static partial class Ops
{
    /// <summary>Resolves one -1 in a requested shape and checks the element count.</summary>
    private static int[] InferShape(string op, ReadOnlySpan<int> from, int[] to)
    {
        int n = Shapes.NumEl(from);
        var r = (int[])to.Clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < r.Length; i++)
        {
            if (r[i] == -1)
            {
                if (infer >= 0)
                    throw new ShapeMismatchException($"{op}: only one dimension can be -1 (got {Shapes.Format(to)})");
                infer = i;
            }
            else if (r[i] < 0)
                throw new ShapeMismatchException($"{op}: invalid dimension {r[i]} in {Shapes.Format(to)}");
            else
                known *= r[i];
        }
        if (infer >= 0)
        {
            if (known == 0 || n % known != 0)
                throw new ShapeMismatchException(
                    $"{op}: shape {Shapes.Format(to)} is invalid for input of size {n} (shape {Shapes.Format(from)})"
                );
            r[infer] = (int)(n / known);
        }
        else if (known != n)
            throw new ShapeMismatchException(
                $"{op}: shape {Shapes.Format(to)} is invalid for input of size {n} (shape {Shapes.Format(from)})"
            );
        return r;
    }

    /// <summary>Strides that view <paramref name="x"/> as <paramref name="shape"/> without copying, or null when the
    /// layout does not allow it (PyTorch's computeStride rule: each group of merged dims must be contiguous).</summary>
    private static int[]? ViewStrides(Tensor x, int[] shape)
    {
        if (x.IsContiguous)
            return Shapes.ContiguousStrides(shape);
        var oldShape = x.Shape;
        var oldStrides = x.Strides;
        var newStrides = new int[shape.Length];
        int viewD = shape.Length - 1;
        long chunkBase = oldStrides.Length > 0 ? oldStrides[^1] : 1;
        long tensorNumel = 1,
            viewNumel = 1;
        for (int tensorD = oldShape.Length - 1; tensorD >= 0; tensorD--)
        {
            tensorNumel *= oldShape[tensorD];
            if (tensorD == 0 || (oldShape[tensorD - 1] != 1 && oldStrides[tensorD - 1] != tensorNumel * chunkBase))
            {
                while (viewD >= 0 && (viewNumel < tensorNumel || shape[viewD] == 1))
                {
                    newStrides[viewD] = (int)(viewNumel * chunkBase);
                    viewNumel *= shape[viewD];
                    viewD--;
                }
                if (viewNumel != tensorNumel)
                    return null;
                if (tensorD > 0)
                {
                    chunkBase = oldStrides[tensorD - 1];
                    tensorNumel = 1;
                    viewNumel = 1;
                }
            }
        }
        return viewD != -1 ? null : newStrides;
    }

    internal static Tensor ReshapeNoGrad(Tensor x, int[] shape)
    {
        x.CheckAlive();
        var s = InferShape("reshape", x.Shape, shape);
        var strides = ViewStrides(x, s);
        if (strides != null)
            return x.View(s, strides, x.Offset);
        using var c = x.Contiguous();
        return c.View(s, Shapes.ContiguousStrides(s), c.Offset);
    }

    /// <summary>Same elements in a new shape (one dim may be -1): a view when the layout allows, else a copy.</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        var r = ReshapeNoGrad(x, shape);
        if (!Recorder.Needs(x))
            return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "reshape", [x], g => [ReshapeNoGrad(g, inShape)]);
    }

    /// <summary>A view in a new shape; throws when the layout needs a copy (use <see cref="Reshape"/>).</summary>
    public static Tensor View(Tensor x, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        var s = InferShape("view", x.Shape, shape);
        if (ViewStrides(x, s) == null)
            throw new ShapeMismatchException(
                $"view: shape {Shapes.Format(s)} is not compatible with the input's size and strides (shape "
                    + $"{Shapes.Format(x.Shape)}, strides {Shapes.Format(x.Strides)}); use Reshape, or Contiguous() "
                    + $"first"
            );
        return Reshape(x, s);
    }

    /// <summary>Flattens dims start..end into one.</summary>
    public static Tensor Flatten(Tensor x, int startDim = 0, int endDim = -1)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank == 0)
            return Reshape(x, 1);
        int s = Shapes.NormalizeDim("flatten", startDim, x.Rank),
            e = Shapes.NormalizeDim("flatten", endDim, x.Rank);
        if (s > e)
            throw new ArgumentException(
                $"flatten: start dim {startDim} comes after end dim {endDim}",
                nameof(startDim)
            );
        var shape = new List<int>();
        for (int i = 0; i < s; i++)
            shape.Add(x.Shape[i]);
        int m = 1;
        for (int i = s; i <= e; i++)
            m *= x.Shape[i];
        shape.Add(m);
        for (int i = e + 1; i < x.Rank; i++)
            shape.Add(x.Shape[i]);
        return Reshape(x, shape.ToArray());
    }

    internal static Tensor PermuteNoGrad(Tensor x, int[] perm)
    {
        x.CheckAlive();
        if (perm.Length != x.Rank)
            throw new ShapeMismatchException($"permute: {perm.Length} dims given for a tensor of rank {x.Rank}");
        var p = perm.Select(d => Shapes.NormalizeDim("permute", d, x.Rank)).ToArray();
        if (p.Distinct().Count() != p.Length)
            throw new ArgumentException($"permute: dims {Shapes.Format(perm)} repeat a dimension", nameof(perm));
        return x.View(p.Select(d => x.Shape[d]).ToArray(), p.Select(d => x.Strides[d]).ToArray(), x.Offset);
    }

    /// <summary>Reorders dims (a view).</summary>
    public static Tensor Permute(Tensor x, params int[] perm)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(perm);
        var r = PermuteNoGrad(x, perm);
        if (!Recorder.Needs(x))
            return r;
        var p = perm.Select(d => Shapes.NormalizeDim("permute", d, x.Rank)).ToArray();
        var inv = new int[p.Length];
        for (int i = 0; i < p.Length; i++)
            inv[p[i]] = i;
        return Recorder.Record(r, "permute", [x], g => [PermuteNoGrad(g, inv)]);
    }

    /// <summary>Swaps two dims (a view).</summary>
    public static Tensor Transpose(Tensor x, int dim0, int dim1)
    {
        ArgumentNullException.ThrowIfNull(x);
        var p = Enumerable.Range(0, x.Rank).ToArray();
        int a = Shapes.NormalizeDim("transpose", dim0, x.Rank),
            b = Shapes.NormalizeDim("transpose", dim1, x.Rank);
        (p[a], p[b]) = (p[b], p[a]);
        return Permute(x, p);
    }

    /// <summary>Elements start..start+length-1 of one dim (a view).</summary>
    public static Tensor Narrow(Tensor x, int dim, int start, int length) => Slice(x, dim, start, start + length, 1);

    /// <summary>Elements start, start+step, ... below end of one dim (a view). Negative start/end count from the
    /// end.</summary>
    public static Tensor Slice(Tensor x, int dim, int start, int end, int step = 1)
    {
        ArgumentNullException.ThrowIfNull(x);
        x.CheckAlive();
        int d = Shapes.NormalizeDim("slice", dim, x.Rank);
        int size = x.Shape[d];
        if (step <= 0)
            throw new ArgumentOutOfRangeException(nameof(step), $"slice: step must be positive, got {step}");
        if (start < 0)
            start += size;
        if (end < 0)
            end += size;
        if (start < 0 || start > size || end < start || end > size)
            throw new ArgumentOutOfRangeException(
                nameof(start),
                $"slice: range [{start}, {end}) is outside dimension {d} of size {size} (shape "
                    + $"{Shapes.Format(x.Shape)})"
            );
        int len = (end - start + step - 1) / step;
        var shape = x.ShapeArray;
        var strides = x.Strides.ToArray();
        shape[d] = len;
        int offset = x.Offset + start * strides[d];
        strides[d] *= step;
        var r = x.View(shape, strides, offset);
        if (!Recorder.Needs(x))
            return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "slice", [x], g =>
        {
            var z = Tensor.Empty(inShape, g.DType, g.Device, zeroed: true);
            using var region = Slice(z, d, start, end, step);
            CopyInto(region, g);
            return [z];
        });
    }

    /// <summary>The sub-tensor at <paramref name="index"/> of one dim, with that dim removed (a view).</summary>
    public static Tensor Select(Tensor x, int dim, int index)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = Shapes.NormalizeDim("select", dim, x.Rank);
        if (index < 0)
            index += x.Shape[d];
        using var n = Narrow(x, d, index, 1);
        return Squeeze(n, d);
    }

    internal static Tensor ExpandNoGrad(Tensor x, int[] shape)
    {
        var target = (int[])shape.Clone();
        int off = target.Length - x.Rank;
        if (off < 0)
            throw new ShapeMismatchException(
                $"expand: cannot expand shape {Shapes.Format(x.Shape)} to fewer dims {Shapes.Format(shape)}"
            );
        for (int i = 0; i < target.Length; i++)
        {
            if (target[i] == -1)
            {
                if (i < off)
                    throw new ShapeMismatchException(
                        $"expand: -1 is not allowed for a new leading dim ({Shapes.Format(shape)})"
                    );
                target[i] = x.Shape[i - off];
            }
            if (i >= off && x.Shape[i - off] != 1 && x.Shape[i - off] != target[i])
                throw new ShapeMismatchException(
                    $"expand: shape {Shapes.Format(x.Shape)} cannot expand to {Shapes.Format(shape)} (dim {i}: only "
                        + $"size-1 dims expand)"
                );
        }
        return x.View(target, Shapes.BroadcastStrides(x.Shape, x.Strides, target), x.Offset);
    }

    /// <summary>Broadcasts size-1 dims to <paramref name="shape"/> (a view; no copy).</summary>
    public static Tensor Expand(Tensor x, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(shape);
        var r = ExpandNoGrad(x, shape);
        if (!Recorder.Needs(x))
            return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "expand", [x], g => [SumTo(g, inShape)]);
    }

    /// <summary>Removes size-1 dims (all, or just <paramref name="dim"/>).</summary>
    public static Tensor Squeeze(Tensor x, int? dim = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        var shape = new List<int>();
        int d = dim.HasValue ? Shapes.NormalizeDim("squeeze", dim.Value, x.Rank) : -1;
        for (int i = 0; i < x.Rank; i++)
            if (!(x.Shape[i] == 1 && (d < 0 || d == i)))
                shape.Add(x.Shape[i]);
        return Reshape(x, shape.ToArray());
    }

    /// <summary>Inserts a size-1 dim at <paramref name="dim"/>.</summary>
    public static Tensor Unsqueeze(Tensor x, int dim)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = Shapes.NormalizeDim("unsqueeze", dim, x.Rank + 1);
        var shape = x.ShapeArray.ToList();
        shape.Insert(d, 1);
        return Reshape(x, shape.ToArray());
    }
}
