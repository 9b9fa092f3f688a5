using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>Ops whose result size depends on the data — nonzero, masked_select, unique — composed from the stable
/// sort: a stable argsort of "is zero" lists the true positions first, in order, so no device needs a compaction
/// kernel of its own. Each reads one count back to the host (as PyTorch's do), so none can run inside a graph
/// capture.</summary>
public static partial class Ops
{
    /// <summary>torch.nonzero: the int64 coordinates [count, rank] of the nonzero (true) elements, in row-major
    /// order.</summary>
    public static Tensor Nonzero(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var flat = TruePositions("nonzero", x);
        if (x.Rank == 0)
            return Tensor.Empty([flat.NumEl, 0], DType.Int64, x.Device);
        var columns = new Tensor[x.Rank];
        try
        {
            for (int k = 0; k < x.Rank; k++)
            {
                // Coordinate k of every element (an arange along k, broadcast over the others), picked at the
                // positions: exact in int64 for any size.
                using var host = Tensor.Arange(x.Shape[k]);
                using var along = MoveNoGrad(host, x.Device);
                var strides = new int[x.Rank];
                strides[k] = 1;
                using var spread = along.View(x.ShapeArray, strides, along.Offset);
                using var table = ReshapeNoGrad(spread, [-1]);
                columns[k] = IndexSelect(table, 0, flat);
            }
            return Stack(columns, 1);
        }
        finally
        {
            foreach (var c in columns)
                c?.Dispose();
        }
    }

    /// <summary>torch.masked_select: the elements of x where the bool mask (broadcast with x) is true, as a 1-D
    /// tensor in row-major order; the gradient returns to those elements.</summary>
    public static Tensor MaskedSelect(Tensor x, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(mask);
        if (mask.DType != DType.Bool)
            throw new DTypeMismatchException(
                $"masked_select: the mask must be bool, got {mask.DType.TorchName()}; build it with a comparison"
            );
        var shape = Shapes.Broadcast("masked_select", x.Shape, mask.Shape);
        using var xe = Expand(x, shape);
        using var flat = Reshape(xe, -1);
        using var me = ExpandNoGrad(mask, shape);
        using var positions = TruePositions("masked_select", me);
        return IndexSelect(flat, 0, positions);
    }

    /// <summary>torch.unique (sorted): the distinct values in ascending order, and optionally the int64 inverse (for
    /// every element, the index of its value among them; x's shape) and the int64 counts. NaNs are each distinct, as
    /// PyTorch. Not differentiable.</summary>
    public static (Tensor Values, Tensor? Inverse, Tensor? Counts) Unique(
        Tensor x,
        bool returnInverse = false,
        bool returnCounts = false
    )
    {
        ArgumentNullException.ThrowIfNull(x);
        using var noGrad = GradMode.NoGrad();
        using var flat = ReshapeNoGrad(x.Detach(), [-1]);
        int n = flat.NumEl;
        var (sorted, perm, _) = SortNoGrad("unique", flat, 0, descending: false);
        using (sorted)
        using (perm)
        {
            if (n == 0)
                return (
                    Clone(sorted),
                    returnInverse ? Tensor.Empty(x.ShapeArray, DType.Int64, x.Device) : null,
                    returnCounts ? Tensor.Empty([0], DType.Int64, x.Device) : null
                );
            // A value starts a group where it differs from the one before it.
            using var head = Tensor.Full([1], 1, DType.Bool);
            using var headOn = MoveNoGrad(head, x.Device);
            using var later = Narrow(sorted, 0, 1, n - 1);
            using var earlier = Narrow(sorted, 0, 0, n - 1);
            using var differs = Ne(later, earlier);
            using var starts = Cat([headOn, differs], 0);
            using var positions = TruePositions("unique", starts);
            var values = IndexSelect(sorted, 0, positions);
            if (!returnInverse && !returnCounts)
                return (values, null, null);
            var count = CountDType(x.Device);
            using var startCount = To(starts, count);
            using var running = CumSum(startCount, 0);
            using var groupF = AddScalar(running, -1);
            using var group = ToDType(groupF, DType.Int64, false);
            Tensor? inverse = null,
                counts = null;
            if (returnInverse)
            {
                using var inv = Tensor.Empty([n], DType.Int64, x.Device);
                inv.Backend.Scatter(inv, 0, perm, group);
                inverse = ReshapeNoGrad(inv, x.ShapeArray);
            }
            if (returnCounts)
            {
                using var z = Tensor.Empty([values.NumEl], count, x.Device, zeroed: true);
                using var ones = ScalarsOn([n], 1, count, x.Device);
                using var c = ScatterAddNoGrad(z, 0, group, ones);
                counts = ToDType(c, DType.Int64, false);
            }
            return (values, inverse, counts);
        }
    }

    /// <summary>The dtype counts are kept in on a device: exact int64 on the CPU; float32 (exact below 2²⁴) where the
    /// device's sums are float32 only.</summary>
    private static DType CountDType(Device device) => device.Type == DeviceType.Cpu ? DType.Int64 : DType.Float32;

    /// <summary>The row-major positions (int64 [count]) of x's nonzero elements: a stable argsort of "x is zero"
    /// puts them first, in order; the count is read back.</summary>
    private static Tensor TruePositions(string op, Tensor x)
    {
        x.CheckAlive();
        using var noGrad = GradMode.NoGrad();
        if (x.Backend.Capturing)
            throw new InvalidOperationException(
                $"{op}: the result's size depends on the data, which cannot be read during a graph capture; run it "
                    + "outside the capture"
            );
        using var flat = ReshapeNoGrad(x.Detach(), [-1]);
        using var zero = Tensor.Scalar(0, x.DType == DType.Bool ? DType.Bool : x.DType);
        using var isZero = Eq(flat, zero);
        var count = CountDType(x.Device);
        using var key = To(isZero, count == DType.Int64 ? DType.Int64 : DType.Float32);
        using var order = ArgSort(key, 0);
        using var keyCount = To(isZero, count);
        using var zeros = Sum(keyCount);
        long nonzero = flat.NumEl - (long)zeros.ToArray<double>()[0];
        using var first = Narrow(order, 0, 0, (int)nonzero);
        return ContiguousNoGrad(first);
    }
}
