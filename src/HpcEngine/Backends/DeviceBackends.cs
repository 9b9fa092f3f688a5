using HpcEngine.Backends.Cpu;

namespace HpcEngine.Backends;

/// <summary>The registry of backends: the one piece of process-wide state besides the documented defaults and the
/// storage pool (a tensor names its device, and the device's backend must be found from the tensor alone). The CPU's
/// backend is built in; the CUDA package registers itself (<c>CudaBackend.Register()</c>); an application can serve
/// <see cref="DeviceType.External"/> with its own:
/// <code>
/// DeviceBackends.Register(DeviceType.External, new MyAcceleratorBackend());
/// using var x = Tensor.Randn([64, 64]).To(Device.External(0)); // x.Backend is MyAcceleratorBackend
/// </code></summary>
public static class DeviceBackends
{
    private static readonly Dictionary<DeviceType, IBackend> Registered = new();
    private static readonly Lock Gate = new();

    /// <summary>The CPU's backend (the engine's SIMD, multi-threaded kernels).</summary>
    public static IBackend Cpu => CpuBackend.Instance;

    /// <summary>Serves every <paramref name="type"/> device with <paramref name="backend"/> (replacing an earlier
    /// registration). The CPU's backend cannot be replaced.</summary>
    public static void Register(DeviceType type, IBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (type == DeviceType.Cpu)
            throw new ArgumentException("the CPU backend is built in and cannot be replaced", nameof(type));
        lock (Gate)
            Registered[type] = backend;
    }

    /// <summary>Removes the backend of <paramref name="type"/>; tensors already there fail on their next op.</summary>
    public static void Unregister(DeviceType type)
    {
        lock (Gate)
            Registered.Remove(type);
    }

    /// <summary>The backend that serves <paramref name="device"/>.</summary>
    /// <exception cref="DeviceMismatchException">No backend is registered for the device's type.</exception>
    public static IBackend For(Device device)
    {
        if (device.Type == DeviceType.Cpu)
            return CpuBackend.Instance;
        lock (Gate)
            if (Registered.TryGetValue(device.Type, out var b))
                return b;
        throw new DeviceMismatchException(
            device.Type == DeviceType.Cuda
                ? $"no backend is registered for {device}: reference HpcEngine.Cuda and call CudaBackend.Register() first"
                : $"no backend is registered for {device}: call DeviceBackends.Register(DeviceType.{device.Type}, backend) first"
        );
    }
}
