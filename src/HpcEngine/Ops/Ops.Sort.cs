using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>Sorting and selection — sort, argsort, topk, kthvalue, median, nanmedian — over the backends' row sort
/// (stable; NaN above every number, as PyTorch). Gradients go to the indices each op returns; where values tie, the
/// stable order decides which index that is (the first in the input).</summary>
public static partial class Ops
{
    /// <summary>torch.sort (stable): the values along <paramref name="dim"/> in order, and their int64
    /// indices.</summary>
    public static (Tensor Values, Tensor Indices) Sort(Tensor x, int dim = -1, bool descending = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (v, i, d) = SortNoGrad("sort", x, dim, descending);
        return (RecordPick("sort", x, v, i, d, keepDim: true), i);
    }

    /// <summary>torch.argsort (stable): the int64 indices that sort <paramref name="x"/> along <paramref
    /// name="dim"/>.</summary>
    public static Tensor ArgSort(Tensor x, int dim = -1, bool descending = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        var (v, i, _) = SortNoGrad("argsort", x, dim, descending);
        v.Dispose();
        return i;
    }

    /// <summary>torch.topk: the <paramref name="k"/> largest (or smallest) values along <paramref name="dim"/>, in
    /// order, with their indices (among equal values the first in the input comes first). Results are always sorted,
    /// which <c>sorted: false</c> permits.</summary>
    public static (Tensor Values, Tensor Indices) TopK(
        Tensor x,
        int k,
        int dim = -1,
        bool largest = true,
        bool sorted = true
    )
    {
        ArgumentNullException.ThrowIfNull(x);
        _ = sorted;
        int d = Shapes.NormalizeDim("topk", dim, Math.Max(x.Rank, 1)),
            n = x.Rank == 0 ? 1 : x.Shape[d];
        if (k < 0 || k > n)
            throw new ArgumentOutOfRangeException(
                nameof(k),
                $"topk: k = {k} is outside [0, {n}], the size of dimension {d} (shape {Shapes.Format(x.Shape)})"
            );
        var (v, i, _) = SortNoGrad("topk", x, d, largest);
        using (v)
        using (i)
        {
            // The first k along d of the (unrecorded) sort.
            using var vk = x.Rank == 0 ? v.Alias() : Narrow(v, d, 0, k);
            using var ik = x.Rank == 0 ? i.Alias() : Narrow(i, d, 0, k);
            var values = ContiguousNoGrad(vk);
            var indices = ContiguousNoGrad(ik);
            return (RecordPick("topk", x, values, indices, d, keepDim: true), indices);
        }
    }

    /// <summary>torch.kthvalue: the k-th smallest value (k from 1) along <paramref name="dim"/> and its
    /// index.</summary>
    public static (Tensor Values, Tensor Indices) KthValue(Tensor x, int k, int dim = -1, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = Shapes.NormalizeDim("kthvalue", dim, Math.Max(x.Rank, 1)),
            n = x.Rank == 0 ? 1 : x.Shape[d];
        if (k < 1 || k > n)
            throw new ArgumentOutOfRangeException(
                nameof(k),
                $"kthvalue: k = {k} is outside [1, {n}], the size of dimension {d} (shape {Shapes.Format(x.Shape)})"
            );
        return PickSorted("kthvalue", x, d, keepDim, k - 1);
    }

    /// <summary>torch.median along a dim: the lower median ((n − 1) / 2-th in order) and its index; a line holding a
    /// NaN gives NaN and the index of its first NaN.</summary>
    public static (Tensor Values, Tensor Indices) Median(Tensor x, int dim, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = Shapes.NormalizeDim("median", dim, Math.Max(x.Rank, 1));
        return PickSorted("median", x, d, keepDim, MedianPosition);
    }

    /// <summary>torch.nanmedian along a dim: the lower median of the values that are not NaN (NaN where all
    /// are).</summary>
    public static (Tensor Values, Tensor Indices) NanMedian(Tensor x, int dim, bool keepDim = false)
    {
        ArgumentNullException.ThrowIfNull(x);
        int d = Shapes.NormalizeDim("nanmedian", dim, Math.Max(x.Rank, 1));
        return PickSorted("nanmedian", x, d, keepDim, NanMedianPosition);
    }

    /// <summary>torch.median of every element: the lower median, NaN if any element is NaN. As PyTorch, the gradient
    /// is shared evenly by the elements equal to it.</summary>
    public static Tensor Median(Tensor x) => MedianAll("median", x, nan: false);

    /// <summary>torch.nanmedian of every element, ignoring NaN.</summary>
    public static Tensor NanMedian(Tensor x) => MedianAll("nanmedian", x, nan: true);

    private static Tensor MedianAll(string name, Tensor x, bool nan)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.NumEl == 0)
            throw new ShapeMismatchException($"{name}: the tensor is empty (shape {Shapes.Format(x.Shape)})");
        using var flat = ReshapeNoGrad(x, [-1]);
        var (v, i) = nan ? NanMedian(flat.Detach(), 0) : Median(flat.Detach(), 0);
        i.Dispose();
        if (!Recorder.Needs(x))
            return v;
        return Recorder.Record(v, name, [x], [x, v], (g, s) =>
        {
            using var hit = Eq(s[0], s[1]);
            using var xn = IsNan(s[0]);
            using var vn = IsNan(s[1]);
            using var bothNan = LogicalAnd(xn, vn);
            using var any = LogicalOr(hit, bothNan);
            using var m = To(any, g.DType);
            using var cnt = Sum(m);
            using var w = Div(m, cnt);
            return [Mul(w, g)];
        });
    }

    private static int[] Narrowed(Tensor t, int d, int k)
    {
        var s = t.ShapeArray;
        s[d] = k;
        return s;
    }

    private const int MedianPosition = -1,
        NanMedianPosition = -2;

    /// <summary>Sorts x along d (ascending) and picks one position per line: <paramref name="position"/> is a fixed
    /// position (≥ 0), or <see cref="MedianPosition"/> (the lower median, the first NaN when there is one) or <see
    /// cref="NanMedianPosition"/> (the lower median of the numbers), which come from each line's NaN
    /// count.</summary>
    private static (Tensor, Tensor) PickSorted(string name, Tensor x, int d, bool keepDim, int position)
    {
        if (x.Rank > 0 && x.Shape[d] == 0)
            throw new ShapeMismatchException(
                $"{name}: cannot pick from an empty dimension {d} (shape {Shapes.Format(x.Shape)})"
            );
        var (v, i, _) = SortNoGrad(name, x, d, descending: false);
        using (v)
        using (i)
        {
            int n = x.Rank == 0 ? 1 : x.Shape[d];
            var keptShape = x.Rank == 0 ? [] : Narrowed(v, d, 1);
            using var pos = PickPositions(x, d, n, keptShape, position);
            using var pv = x.Rank == 0 ? v.Alias() : Gather(v, d, pos);
            using var pi = x.Rank == 0 ? i.Alias() : Gather(i, d, pos);
            var outShape = x.Rank == 0 ? [] : ReducedShape(x.Shape, [d], keepDim);
            var values = ReshapeNoGrad(pv, outShape);
            var indices = ReshapeNoGrad(pi, outShape);
            return (RecordPick(name, x, values, indices, d, keepDim), indices);
        }
    }

    private static Tensor PickPositions(Tensor x, int d, int n, int[] keptShape, int position)
    {
        if (position >= 0 || x.Rank == 0)
            return ScalarsOn(keptShape, Math.Max(position, 0), DType.Int64, x.Device);
        // The NaN count per line decides the position: lines sort their NaNs last.
        var ct = x.DType.IsFloating() ? x.DType.ComputeType() : DType.Float64;
        using var xf = ToDType(x, ct, false);
        using var isNan = IsNan(xf);
        using var nanF = To(isNan, ct);
        using var nanCount = Sum(nanF, [d], keepDim: true);
        using var numbers = RSubScalar(n, nanCount);
        Tensor posF;
        if (position == MedianPosition)
        {
            using var zero = Tensor.Scalar(0);
            using var hasNan = Gt(nanCount, zero);
            using var lower = ScalarsOn(keptShape, (n - 1) / 2, ct, x.Device);
            posF = Where(hasNan, numbers, lower);
        }
        else
        {
            using var m1 = AddScalar(numbers, -1);
            using var half = MulScalar(m1, 0.5);
            using var fl = Floor(half);
            using var zero = Tensor.Scalar(0, ct);
            posF = Maximum(fl, zero);
        }
        using (posF)
            return ToDType(posF, DType.Int64, false);
    }

    /// <summary>Records a pick (sort, topk, kthvalue, median): the gradient of each picked value goes to the element
    /// it came from.</summary>
    private static Tensor RecordPick(string name, Tensor x, Tensor values, Tensor indices, int d, bool keepDim)
    {
        if (!Recorder.Needs(x))
            return values;
        var shape = x.ShapeArray;
        return Recorder.Record(values, name, [x], [indices], (g, s) =>
        {
            if (shape.Length == 0)
                return [ReshapeNoGrad(g, [])];
            using var gi = Unreduce(g, shape, [d], keepDim);
            using var ii = Unreduce(s[0], shape, [d], keepDim);
            using var z = Tensor.Empty(shape, g.DType, g.Device, zeroed: true);
            return [ScatterAddNoGrad(z, d, ii, gi)];
        });
    }

    /// <summary>x sorted along dim (moved last for the backend, then back), its int64 indices, and the dim.
    /// Integers and bool sort as int64, 16-bit floats as float32, and keep their dtype.</summary>
    private static (Tensor Values, Tensor Indices, int Dim) SortNoGrad(string name, Tensor x, int dim, bool descending)
    {
        x.CheckAlive();
        int d = Shapes.NormalizeDim(name, dim, Math.Max(x.Rank, 1));
        var wide =
            !x.DType.IsFloating() ? DType.Int64
            : x.DType.ComputeType() != x.DType ? x.DType.ComputeType()
            : x.DType;
        if (wide != x.DType)
        {
            using var xw = ToDType(x, wide, false);
            var (vw, iw, _) = SortNoGrad(name, xw, d, descending);
            using (vw)
                return (ToDType(vw, x.DType, false), iw, d);
        }
        if (x.Rank == 0)
            return (Clone(x.Detach()), ScalarsOn([], 0, DType.Int64, x.Device), d);
        int last = x.Rank - 1;
        using var moved = d == last ? x.Alias() : PermuteNoGrad(x, Swap(x.Rank, d, last));
        using var c = ContiguousNoGrad(moved);
        int n = x.Shape[d],
            rows = n == 0 ? 0 : x.NumEl / n;
        using var values = Tensor.Empty(c.Shape, x.DType, x.Device);
        using var indices = Tensor.Empty(c.Shape, DType.Int64, x.Device);
        x.Backend.Sort(c, rows, n, values, indices, descending);
        if (d == last)
            return (values.Alias(), indices.Alias(), d);
        using var vb = PermuteNoGrad(values, Swap(x.Rank, d, last));
        using var ib = PermuteNoGrad(indices, Swap(x.Rank, d, last));
        return (ContiguousNoGrad(vb), ContiguousNoGrad(ib), d);
    }

    private static int[] Swap(int rank, int a, int b)
    {
        var p = Enumerable.Range(0, rank).ToArray();
        (p[a], p[b]) = (p[b], p[a]);
        return p;
    }
}
