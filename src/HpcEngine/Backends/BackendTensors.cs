using HpcEngine.Backends.Cpu;

namespace HpcEngine.Backends;

/// <summary>The tensor internals a device backend builds on — storage, offsets, views, raw casts — public so that
/// any backend can be written against the public API: HpcEngine.Cuda uses exactly these, and an application's own
/// backend behind <see cref="DeviceType.External"/> can too (see <see cref="DeviceBackends.Register"/>). User code has
/// the ordinary tensor API for all of it.</summary>
public static unsafe class BackendTensors
{
    /// <summary>A new uninitialised (or <paramref name="zeroed"/>) contiguous tensor on <paramref
    /// name="device"/>.</summary>
    public static Tensor Empty(ReadOnlySpan<int> shape, DType dtype, Device device, bool zeroed = false) =>
        Tensor.Empty(shape, dtype, device, zeroed);

    /// <summary>The element offset of <paramref name="t"/>'s first element in its storage (PyTorch's
    /// storage_offset()).</summary>
    public static int Offset(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        return t.Offset;
    }

    /// <summary>The device memory block <paramref name="t"/> views (the backend's own <see cref="IBackendMemory"/>);
    /// an error for a CPU tensor.</summary>
    public static IBackendMemory DeviceMemory(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        return t.Storage.DeviceMemory;
    }

    /// <summary>A view of <paramref name="t"/>'s storage with its own shape, strides and element offset (shares the
    /// memory; counts as one more holder of it). The caller keeps it within the storage.</summary>
    public static Tensor View(Tensor t, int[] shape, int[] strides, int offset)
    {
        ArgumentNullException.ThrowIfNull(t);
        return t.View(shape, strides, offset);
    }

    /// <summary>Another handle to exactly this view, for two owners that dispose independently.</summary>
    public static Tensor Alias(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        return t.Alias();
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> (naming the tensor) when <paramref name="t"/> was
    /// disposed.</summary>
    public static void ThrowIfDisposed(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        t.CheckAlive();
    }

    /// <summary>A contiguous CPU tensor's bytes, writable (the tensor must stay alive while they are used).</summary>
    public static Memory<byte> HostBytes(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        return t.AsByteMemory();
    }

    /// <summary><paramref name="t"/> as a contiguous tensor (itself, aliased, when it already is), no graph
    /// recorded.</summary>
    public static Tensor Contiguous(Tensor t) => Ops.ContiguousNoGrad(t);

    /// <summary><paramref name="t"/> converted to <paramref name="dtype"/> (a new tensor unless it already has it), no
    /// graph recorded.</summary>
    public static Tensor Cast(Tensor t, DType dtype) => Ops.ToDType(t, dtype, forceCopy: false);

    /// <summary>Writes <paramref name="value"/> as one element of <paramref name="dtype"/> at <paramref
    /// name="destination"/> (round to nearest even for the half types, as PyTorch).</summary>
    public static void WriteScalar(byte* destination, DType dtype, double value) =>
        CastKernels.Write(destination, dtype, 0, value);
}
