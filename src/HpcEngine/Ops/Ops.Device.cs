using HpcEngine.Autograd;
using HpcEngine.Backends;
using HpcEngine.Backends.Cpu;

namespace HpcEngine;

/// <summary>Moving tensors between devices, and the device side of the ops that have one: each op checks where its
/// input lives and hands device tensors to the device's <see cref="IDeviceBackend"/> (the CPU kernels never see
/// device memory; a CPU kernel reached with a device tensor throws a <see cref="DeviceMismatchException"/>).</summary>
public static partial class Ops
{
    /// <summary>A copy of <paramref name="x"/> on <paramref name="device"/> (a new handle when it is already there).
    /// Not recorded.</summary>
    internal static unsafe Tensor MoveNoGrad(Tensor x, Device device)
    {
        x.CheckAlive();
        if (x.Device == device) return x.Alias();
        if (!x.IsCpu && device.Type != DeviceType.Cpu)
        {
            using var host = MoveNoGrad(x, Device.Cpu);
            return MoveNoGrad(host, device);
        }
        int bytes = checked(x.NumEl * x.DType.SizeOf());
        if (x.IsCpu)
        {
            using var c = x.Contiguous();
            var r = Tensor.Empty(x.Shape, x.DType, device);
            DeviceBackends.For(device).CopyFromHost(r.Storage.DeviceMemory, 0, new ReadOnlySpan<byte>(c.BytePtr, bytes));
            return r;
        }
        using var dc = ContiguousNoGrad(x);
        var h = Tensor.Empty(x.Shape, x.DType);
        DeviceBackends.For(x.Device).CopyToHost(new Span<byte>(h.BytePtr, bytes), dc.Storage.DeviceMemory, (long)dc.Offset * x.DType.SizeOf());
        return h;
    }

    /// <summary>Moves <paramref name="x"/> to <paramref name="device"/>; gradients flow back to x's device.</summary>
    public static Tensor ToDevice(Tensor x, Device device)
    {
        ArgumentNullException.ThrowIfNull(x);
        var r = MoveNoGrad(x, device);
        if (!Recorder.Needs(x)) return r;
        var from = x.Device;
        return Recorder.Record(r, "to", [x], g => [MoveNoGrad(g, from)]);
    }

    /// <summary>dst := src for contiguous tensors of one shape and dtype on two devices (one of them the CPU, or the
    /// same device): one transfer, no temporaries. Synchronous, like every host transfer. Not recorded.</summary>
    internal static unsafe void CopyAcross(Tensor src, Tensor dst)
    {
        if (!src.IsContiguous || !dst.IsContiguous || src.DType != dst.DType || !src.Shape.SequenceEqual(dst.Shape))
            throw new InvalidOperationException("internal: CopyAcross takes contiguous tensors of one shape and dtype");
        if (src.Device == dst.Device)
        {
            CopyStrided(src, dst);
            return;
        }
        int bytes = checked(src.NumEl * src.DType.SizeOf());
        if (src.IsCpu)
            DeviceBackends.For(dst.Device).CopyFromHost(dst.Storage.DeviceMemory, (long)dst.Offset * dst.DType.SizeOf(), new ReadOnlySpan<byte>(src.BytePtr, bytes));
        else if (dst.IsCpu)
            DeviceBackends.For(src.Device).CopyToHost(new Span<byte>(dst.BytePtr, bytes), src.Storage.DeviceMemory, (long)src.Offset * src.DType.SizeOf());
        else throw new DeviceMismatchException($"copy between {src.Device} and {dst.Device} goes through the host: move to the CPU first");
        dst.BumpVersion();
    }

    /// <summary>A contiguous handle (the same memory when already contiguous), not recorded.</summary>
    internal static Tensor ContiguousNoGrad(Tensor x)
    {
        if (x.IsContiguous) return x.Alias();
        var r = Tensor.Empty(x.Shape, x.DType, x.Device);
        CopyStrided(x, r);
        return r;
    }

    /// <summary>dst := src (same shape, any strides), on whichever device they share.</summary>
    internal static void CopyStrided(Tensor src, Tensor dst)
    {
        if (dst.IsCpu) CastKernels.CopyStrided(src, dst);
        else DeviceBackends.For(dst.Device).Copy(src, dst);
    }

    /// <summary>a op b with broadcasting on a device: the inputs are converted to the promoted dtype's compute type
    /// there (bf16/fp16 compute in fp32 and are rounded back, as on the CPU; a 0-dim CPU operand takes the other's
    /// dtype and moves) and expanded to the result's shape by stride-0 views.</summary>
    private static Tensor DeviceBinary(BinaryOp op, string name, Tensor a, Tensor b, Device? on = null)
    {
        var device = on ?? a.Device;
        var dtype = DeviceOperandType(a, b);
        var compute = dtype.ComputeType();
        if (compute != dtype)
        {
            using var wide = DeviceBinaryIn(op, name, a, b, device, compute);
            return ToDType(wide, dtype, false);
        }
        return DeviceBinaryIn(op, name, a, b, device, dtype);
    }

    private static Tensor DeviceBinaryIn(BinaryOp op, string name, Tensor a, Tensor b, Device device, DType dtype)
    {
        var shape = Shapes.Broadcast(name, a.Shape, b.Shape);
        using var ac = OnDevice(a, device, dtype);
        using var bc = OnDevice(b, device, dtype);
        using var ae = ac.View(shape, Shapes.BroadcastStrides(ac.Shape, ac.Strides, shape), ac.Offset);
        using var be = bc.View(shape, Shapes.BroadcastStrides(bc.Shape, bc.Strides, shape), bc.Offset);
        var r = Tensor.Empty(shape, dtype, device);
        DeviceBackends.For(device).Binary(op, ae, be, r);
        return r;
    }

    /// <summary>dst += src in place on a device (dst contiguous).</summary>
    private static void DeviceAddInto(Tensor dst, Tensor src)
    {
        SameDevice("add_", dst, src);
        if (!dst.IsContiguous)
            throw new DeviceMismatchException($"add_: in-place accumulation into a non-contiguous view on {dst.Device} is not implemented yet");
        using var sc = ToDType(src, dst.DType, false);
        using var se = sc.View(dst.ShapeArray, Shapes.BroadcastStrides(sc.Shape, sc.Strides, dst.Shape), sc.Offset);
        DeviceBackends.For(dst.Device).Binary(BinaryOp.Add, dst, se, dst);
    }

    /// <summary>Sum (scaled by <paramref name="scale"/>: 1 for sum, 1/n for mean) over <paramref name="dims"/> on a
    /// device: the kept dims are moved first and the reduced ones last, then each row is summed.</summary>
    private static Tensor DeviceSum(Tensor x, int[] dims, bool keepDim, double scale)
    {
        var (outShape, kept, outer, reduced) = ReduceLayout(x, dims, keepDim);
        using var arranged = Arrange(x, kept, dims);
        var r = Tensor.Empty(outShape, x.DType, x.Device);
        DeviceBackends.For(x.Device).Sum(arranged, outer, reduced, 1, r, scale);
        return r;
    }

    /// <summary>Cross-entropy of logits [N, C] on a device: one fused kernel gives each row's loss and the logits'
    /// gradient; the rows that count (not ignore_index) are counted on the device, so nothing is read back and the
    /// step can be captured in a graph. Eagerly the targets are also read back once to check their range (the CPU
    /// path's check); under capture an out-of-range target gives a NaN loss instead.</summary>
    internal static Tensor DeviceCrossEntropy(Tensor logits, Tensor target, int ignoreIndex, double smoothing, Reduction reduction)
    {
        SameDevice("cross_entropy", logits, target);
        if (logits.DType is DType.BFloat16 or DType.Float16)
        {
            // 16-bit logits: the loss in fp32 (the fused kernel), rounded back; the casts carry the gradient.
            using var wide = To(logits, DType.Float32);
            using var loss32 = DeviceCrossEntropy(wide, target, ignoreIndex, smoothing, reduction);
            return To(loss32, logits.DType);
        }
        if (logits.Rank != 2)
            throw new DeviceMismatchException($"cross_entropy on {logits.Device} takes logits [N, C] (got {Shapes.Format(logits.Shape)}); reshape, or move to the CPU");
        int n = logits.Shape[0], c = logits.Shape[1];
        if (target.Rank != 1 || target.Shape[0] != n)
            throw ShapeMismatchException.For("cross_entropy", $"the target must be [N] = [{n}] class indices", logits, target);
        var backend = DeviceBackends.For(logits.Device);
        if (!backend.Capturing)
            foreach (long v in target.ToArray<long>())
                if (v != ignoreIndex && (v < 0 || v >= c))
                    throw new IndexOutOfRangeException($"cross_entropy: target class {v} is out of range for {c} classes (valid 0..{c - 1}, or ignore_index {ignoreIndex})");
        using var t64 = target.DType == DType.Int64 ? ContiguousNoGrad(target) : ToDType(target, DType.Int64, false);
        using var lc = ContiguousNoGrad(logits);
        var rowLoss = Tensor.Empty([n], logits.DType, logits.Device);
        using var dlogits = Tensor.Empty([n, c], logits.DType, logits.Device);
        using var counted = reduction == Reduction.Mean ? Tensor.Empty([], logits.DType, logits.Device) : null;
        backend.CrossEntropy(lc, t64, rowLoss, dlogits, ignoreIndex, smoothing, counted);
        Tensor loss;
        if (reduction == Reduction.None) loss = rowLoss.Alias();
        else
        {
            loss = DeviceSum(rowLoss, [0], false, 1.0);
            if (counted != null) loss = loss.Replace(DeviceBinary(BinaryOp.Div, "cross_entropy", loss, counted));
        }
        rowLoss.Dispose();
        if (!Recorder.Needs(logits)) return loss;
        return Recorder.Record(loss, "cross_entropy", [logits], [dlogits], (g, s) =>
        {
            if (reduction != Reduction.None) return [Mul(s[0], g)];
            using var g2 = Unsqueeze(g, 1);
            return [Mul(s[0], g2)];
        });
    }
}
