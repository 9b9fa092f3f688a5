using HpcEngine.Autograd;
using HpcEngine.Backends;
using HpcEngine.Backends.Cpu;

namespace HpcEngine;

/// <summary>The device side of comparisons, where(), max/min/argmax/argmin and the indexing ops (gather,
/// scatter-add, index-select). Operands broadcast through stride-0 views; a 0-dim CPU tensor next to a device tensor
/// is a scalar operand and moves there (as PyTorch allows), taking the other operand's dtype. Indices are read back
/// once and range-checked on the host before any kernel reads through them.</summary>
public static partial class Ops
{
    /// <summary>A stride-0 view of <paramref name="t"/> expanded to <paramref name="shape"/>.</summary>
    private static Tensor Expanded(Tensor t, int[] shape) => t.View(shape, Shapes.BroadcastStrides(t.Shape, t.Strides, shape), t.Offset);

    /// <summary>Where an op with these operands runs: the device of the first non-CPU one (null: all on the CPU).
    /// Operands on another device, or CPU tensors with dims, are refused by name.</summary>
    private static Device? DeviceOf(string op, params Tensor[] operands)
    {
        Device? device = null;
        foreach (var t in operands)
        {
            t.CheckAlive();
            if (t.IsCpu) continue;
            if (device != null && device.Value != t.Device)
                throw new DeviceMismatchException($"{op}: tensors are on different devices ({device} and {t.Device}); move one with .To(device)");
            device = t.Device;
        }
        if (device == null) return null;
        foreach (var t in operands)
            if (t.IsCpu && t.Rank != 0)
                throw new DeviceMismatchException($"{op}: tensors are on different devices (cpu and {device}); move one with .To(device)");
        return device;
    }

    /// <summary>The dtype a device op computes in: a 0-dim operand takes the other's dtype, else the promotion.</summary>
    private static DType DeviceOperandType(Tensor a, Tensor b) =>
        a.Rank == 0 && b.Rank > 0 ? b.DType : b.Rank == 0 && a.Rank > 0 ? a.DType : DTypes.Promote(a.DType, b.DType);

    /// <summary><paramref name="t"/> as <paramref name="dtype"/> on <paramref name="device"/> (a CPU scalar is converted
    /// on the host, then moved).</summary>
    private static Tensor OnDevice(Tensor t, Device device, DType dtype)
    {
        if (t.Device == device) return ToDType(t, dtype, false);
        if (t.IsCpu && t.Rank == 0) return DeviceScalar(t.Item(), dtype, device);
        using var c = ToDType(t, dtype, false);
        return MoveNoGrad(c, device);
    }

    /// <summary>A 0-dim tensor on a device holding <paramref name="value"/>, written there by a fill kernel that takes
    /// the value as an argument: no host-to-device copy and no synchronisation, so it can be captured in a graph.</summary>
    internal static Tensor DeviceScalar(double value, DType dtype, Device device)
    {
        var d = Tensor.Empty([], dtype, device);
        d.FillRaw(value);
        return d;
    }

    private static Tensor DeviceCompare(CompareOp op, string name, Tensor a, Tensor b, Device device)
    {
        var shape = Shapes.Broadcast(name, a.Shape, b.Shape);
        var dtype = DeviceOperandType(a, b);
        if (dtype is DType.Bool or DType.UInt8 or DType.BFloat16 or DType.Float16) dtype = DType.Float32; // exact for 0/1 and 16-bit floats
        using var ac = OnDevice(a, device, dtype);
        using var bc = OnDevice(b, device, dtype);
        using var ae = Expanded(ac, shape);
        using var be = Expanded(bc, shape);
        var r = Tensor.Empty(shape, DType.Bool, device);
        DeviceBackends.For(device).Compare(op, ae, be, r);
        return r;
    }

    private static Tensor DeviceWhere(Tensor condition, Tensor a, Tensor b, Device device, int[] shape, DType dtype)
    {
        using var cc = OnDevice(condition, device, condition.DType);
        using var ac = OnDevice(a, device, dtype);
        using var bc = OnDevice(b, device, dtype);
        using var ce = Expanded(cc, shape);
        using var ae = Expanded(ac, shape);
        using var be = Expanded(bc, shape);
        var r = Tensor.Empty(shape, dtype, device);
        DeviceBackends.For(device).Where(ce, ae, be, r);
        return r;
    }

    /// <summary>Max/min (with int64 indices) or argmax/argmin over <paramref name="dims"/> on a device: the reduced
    /// dims are moved last, then one block per row.</summary>
    private static (Tensor Values, Tensor? Indices) DeviceExtreme(ReduceOp op, Tensor x, int[] dims, bool keepDim)
    {
        var (outShape, kept, outer, inner) = ReduceLayout(x, dims, keepDim);
        using var arranged = Arrange(x, kept, dims);
        var values = Tensor.Empty(outShape, x.DType, x.Device);
        var indices = Tensor.Empty(outShape, DType.Int64, x.Device);
        DeviceBackends.For(x.Device).Extreme(arranged, outer, inner, values, indices, op is ReduceOp.Max or ReduceOp.ArgMax);
        return (values, indices);
    }

    /// <summary>Variance, log-sum-exp and the norms on a device, composed from reductions and elementwise ops that
    /// have device paths (the CPU has one fused loop for each). Not recorded: the callers record their own backward.</summary>
    private static Tensor DeviceComposedReduce(ReduceOp op, Tensor x, int[] dims, bool keepDim, int count, double correction)
    {
        using var noGrad = GradMode.NoGrad();
        switch (op)
        {
            case ReduceOp.Norm2:
            {
                using var sq = Mul(x, x);
                using var s = Sum(sq, dims, keepDim);
                return Sqrt(s);
            }
            case ReduceOp.Norm1:
            {
                using var a = Abs(x);
                return Sum(a, dims, keepDim);
            }
            case ReduceOp.NormInf:
            {
                using var a = Abs(x);
                var (v, i) = DeviceExtreme(ReduceOp.Max, a, dims, keepDim);
                i?.Dispose();
                return v;
            }
            case ReduceOp.Var:
            {
                using var mean = Mean(x, dims, keepDim: true);
                using var c = Sub(x, mean);
                using var sq = Mul(c, c);
                using var s = Sum(sq, dims, keepDim);
                return MulScalar(s, 1.0 / Math.Max(count - correction, 0));
            }
            case ReduceOp.LogSumExp:
            {
                // m + log Σ exp(x − m), and m itself where it is infinite (all −inf, or a +inf), as the CPU.
                var (m, i) = DeviceExtreme(ReduceOp.Max, x, dims, keepDim: true);
                i?.Dispose();
                using (m)
                {
                    using var am = Abs(m);
                    using var inf = Tensor.Scalar(double.PositiveInfinity);
                    using var finite = Lt(am, inf);
                    using var zero = Tensor.Scalar(0);
                    using var shift = Where(finite, m, zero);
                    using var d = Sub(x, shift);
                    using var e = Exp(d);
                    using var s = Sum(e, dims, keepDim);
                    using var l = Log(s);
                    using var shiftOut = keepDim ? shift.Alias() : ReshapeNoGrad(shift, ReducedShape(x.Shape, dims, false));
                    using var r = Add(l, shiftOut);
                    using var mOut = keepDim ? m.Alias() : ReshapeNoGrad(m, ReducedShape(x.Shape, dims, false));
                    using var finiteOut = keepDim ? finite.Alias() : ReshapeNoGrad(finite, ReducedShape(x.Shape, dims, false));
                    return Where(finiteOut, r, mOut);
                }
            }
            default:
                throw new DeviceMismatchException($"{op} on {x.Device} is not implemented yet; move the tensor with .To(Device.Cpu)");
        }
    }

    /// <summary>The indices as int64 on <paramref name="device"/>, after checking every one is in [0, limit) on the host.</summary>
    private static Tensor DeviceIndices(string op, Tensor index, Device device, int dim, int limit)
    {
        var ids = index.ToArray<long>();
        for (int i = 0; i < ids.Length; i++)
            if (ids[i] < 0 || ids[i] >= limit)
                throw new IndexOutOfRangeException($"{op}: index {ids[i]} (element {i} of the index) is out of range for dimension {dim} of size {limit}");
        if (index.Device == device && index.DType == DType.Int64) return index.Alias();
        if (index.Device == device) return ToDType(index, DType.Int64, false);
        using var host = Tensor.FromArray(ids, index.ShapeArray);
        return MoveNoGrad(host, device);
    }

    private static Tensor DeviceGather(Tensor x, int dim, Tensor index)
    {
        using var idx = DeviceIndices("gather", index, x.Device, dim, x.Shape[dim]);
        var r = Tensor.Empty(index.ShapeArray, x.DType, x.Device);
        DeviceBackends.For(x.Device).Gather(x, dim, idx, r);
        if (!Recorder.Needs(x)) return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "gather", [x], [idx], (g, s) =>
        {
            var z = Tensor.Empty(inShape, g.DType, g.Device, zeroed: true);
            DeviceBackends.For(g.Device).ScatterAdd(z, dim, s[0], g);
            return [z];
        });
    }

    /// <summary>A copy of x with src added at index along dim, on x's device.</summary>
    private static Tensor DeviceScatterAdd(Tensor x, int dim, Tensor index, Tensor src)
    {
        SameDevice("scatter_add", x, src);
        using var idx = DeviceIndices("scatter_add", index, x.Device, dim, x.Shape[dim]);
        var r = Tensor.Empty(x.ShapeArray, x.DType, x.Device);
        CopyStrided(x, r);
        using var sc = ToDType(src, x.DType, false);
        DeviceBackends.For(x.Device).ScatterAdd(r, dim, idx, sc);
        return r;
    }

    /// <summary>index_select on a device: a gather through the 1-D index expanded (stride 0) over the other dims.</summary>
    private static Tensor DeviceIndexSelect(Tensor x, int dim, Tensor index)
    {
        using var idx = DeviceIndices("index_select", index, x.Device, dim, x.Shape[dim]);
        var shape = x.ShapeArray;
        shape[dim] = idx.NumEl;
        var strides = new int[shape.Length];
        strides[dim] = idx.Rank == 0 ? 0 : idx.Strides[0];
        using var spread = idx.View(shape, strides, idx.Offset);
        var r = Tensor.Empty(shape, x.DType, x.Device);
        var backend = DeviceBackends.For(x.Device);
        backend.Gather(x, dim, spread, r);
        if (!Recorder.Needs(x)) return r;
        var inShape = x.ShapeArray;
        return Recorder.Record(r, "index_select", [x], [spread], (g, s) =>
        {
            using var gc = ContiguousNoGrad(g);
            var z = Tensor.Empty(inShape, g.DType, g.Device, zeroed: true);
            backend.ScatterAdd(z, dim, s[0], gc);
            return [z];
        });
    }
}
