using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine;

/// <summary>Moving tensors between devices, and where an op's operands meet: the host side of every transfer is here
/// (the one place the ops tell the CPU from other devices); every other op hands its operands to their device's
/// <see cref="IBackend"/>.</summary>
public static partial class Ops
{
    /// <summary>A copy of <paramref name="x"/> on <paramref name="device"/> (a new handle when it is already there).
    /// Not recorded.</summary>
    internal static unsafe Tensor MoveNoGrad(Tensor x, Device device)
    {
        x.CheckAlive();
        if (x.Device == device)
            return x.Alias();
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
            DeviceBackends
                .For(device)
                .CopyFromHost(r.Storage.DeviceMemory, 0, new ReadOnlySpan<byte>(c.BytePtr, bytes));
            return r;
        }
        using var dc = ContiguousNoGrad(x);
        var h = Tensor.Empty(x.Shape, x.DType);
        DeviceBackends
            .For(x.Device)
            .CopyToHost(new Span<byte>(h.BytePtr, bytes), dc.Storage.DeviceMemory, (long)dc.Offset * x.DType.SizeOf());
        return h;
    }

    /// <summary>Moves <paramref name="x"/> to <paramref name="device"/>; gradients flow back to x's device.</summary>
    public static Tensor ToDevice(Tensor x, Device device)
    {
        ArgumentNullException.ThrowIfNull(x);
        var r = MoveNoGrad(x, device);
        if (!Recorder.Needs(x))
            return r;
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
            DeviceBackends
                .For(dst.Device)
                .CopyFromHost(
                    dst.Storage.DeviceMemory,
                    (long)dst.Offset * dst.DType.SizeOf(),
                    new ReadOnlySpan<byte>(src.BytePtr, bytes)
                );
        else if (dst.IsCpu)
            DeviceBackends
                .For(src.Device)
                .CopyToHost(
                    new Span<byte>(dst.BytePtr, bytes),
                    src.Storage.DeviceMemory,
                    (long)src.Offset * src.DType.SizeOf()
                );
        else
            throw new DeviceMismatchException(
                $"copy between {src.Device} and {dst.Device} goes through the host: move to the CPU first"
            );
        dst.BumpVersion();
    }

    /// <summary>A contiguous handle (the same memory when already contiguous), not recorded.</summary>
    internal static Tensor ContiguousNoGrad(Tensor x)
    {
        if (x.IsContiguous)
            return x.Alias();
        var r = Tensor.Empty(x.Shape, x.DType, x.Device);
        CopyStrided(x, r);
        return r;
    }

    /// <summary>dst := src (same shape, any strides), on whichever device they share.</summary>
    internal static void CopyStrided(Tensor src, Tensor dst) => dst.Backend.Copy(src, dst);

    /// <summary>A stride-0 view of <paramref name="t"/> expanded to <paramref name="shape"/>.</summary>
    private static Tensor Expanded(Tensor t, int[] shape) =>
        t.View(shape, Shapes.BroadcastStrides(t.Shape, t.Strides, shape), t.Offset);

    /// <summary>Where an op with these operands runs: the device of the first non-CPU one, else the CPU. A 0-dim CPU
    /// tensor next to device tensors is a scalar operand and moves there (as PyTorch allows); operands on two
    /// devices, or CPU tensors with dims next to device ones, are refused by name.</summary>
    private static Device DeviceOf(string op, params Tensor[] operands)
    {
        Device? device = null;
        foreach (var t in operands)
        {
            t.CheckAlive();
            if (t.IsCpu)
                continue;
            if (device != null && device.Value != t.Device)
                throw new DeviceMismatchException(
                    $"{op}: tensors are on different devices ({device} and {t.Device}); move one with .To(device)"
                );
            device = t.Device;
        }
        if (device == null)
            return Device.Cpu;
        foreach (var t in operands)
            if (t.IsCpu && t.Rank != 0)
                throw new DeviceMismatchException(
                    $"{op}: tensors are on different devices (cpu and {device}); move one with .To(device)"
                );
        return device.Value;
    }

    /// <summary>The dtype two operands of an op on <paramref name="device"/> compute in: a 0-dim operand that comes
    /// from another device (a CPU scalar) takes the other's dtype, else the promotion of both.</summary>
    private static DType OperandType(Tensor a, Tensor b, Device device) =>
        a.Rank == 0 && b.Rank > 0 && a.Device != device ? b.DType
        : b.Rank == 0 && a.Rank > 0 && b.Device != device ? a.DType
        : DTypes.Promote(a.DType, b.DType);

    /// <summary><paramref name="t"/> as <paramref name="dtype"/> on <paramref name="device"/> (a scalar from the host
    /// is written there by a fill, anything else converted where it is, then moved).</summary>
    private static Tensor OnDevice(Tensor t, Device device, DType dtype)
    {
        if (t.Device == device)
            return ToDType(t, dtype, false);
        if (t.IsCpu && t.Rank == 0)
            return ScalarOn(t.Item(), dtype, device);
        using var c = ToDType(t, dtype, false);
        return MoveNoGrad(c, device);
    }

    /// <summary>A 0-dim tensor on a device holding <paramref name="value"/>, written there by a fill kernel that takes
    /// the value as an argument: no host-to-device copy and no synchronisation, so it can be captured in a
    /// graph.</summary>
    internal static Tensor ScalarOn(double value, DType dtype, Device device)
    {
        var d = Tensor.Empty([], dtype, device);
        d.FillRaw(value);
        return d;
    }
}
