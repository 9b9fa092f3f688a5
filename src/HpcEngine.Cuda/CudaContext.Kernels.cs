using System.Runtime.InteropServices;
using HpcEngine.Cuda.Interop;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Cuda;

/// <summary>A context's kernels: modules loaded once per file (ahead-of-time fatbin or NVRTC), checked launches, and
/// timing.</summary>
public sealed unsafe partial class CudaContext
{
    /// <summary>Loads one of the engine's kernel files for this device: the ahead-of-time fatbin when an up-to-date one
    /// is found and holds code for this device (<see cref="KernelImages"/>), else NVRTC's build (through the disk
    /// cache).</summary>
    public KernelModule LoadKernels(string file)
    {
        MakeCurrent();
        IntPtr module;
        if (KernelImages.FindFatbin(file, out _) is { } fatbin)
        {
            var image = File.ReadAllBytes(fatbin);
            int status;
            fixed (byte* p = image)
                status = Driver.cuModuleLoadData(out module, p);
            if (status == Driver.Success)
                return new KernelModule(this, ContextBoundHandle.Own<KernelModuleHandle>(ContextHandle, module));
            // No code for this architecture in it (or a driver too old for its PTX): NVRTC builds for this device.
        }
        var compiled = NvrtcCompiler.CompileCached(file, Device.Architecture);
        fixed (byte* image = compiled.Image)
            Driver.Check(Driver.cuModuleLoadData(out module, image));
        return new KernelModule(this, ContextBoundHandle.Own<KernelModuleHandle>(ContextHandle, module));
    }

    /// <summary>Launches <paramref name="function"/> on this context's stream with arguments passed by value (device
    /// pointers as ulong, scalars, or blittable structs laid out as the kernel's), and checks the launch. The argument
    /// values are packed into one stack buffer (no native allocation per launch: launches are the hot path of small
    /// models).</summary>
    public void Launch(IntPtr function, uint grid, uint block, uint sharedBytes, params object[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        MakeCurrent();
        int n = args.Length;
        Span<int> offsets = stackalloc int[Math.Max(1, n)];
        int total = 0;
        for (int i = 0; i < n; i++)
        {
            int size = ArgumentSize(args[i]);
            total = (total + 7) & ~7; // every slot 8-aligned: enough for any kernel parameter we pass
            offsets[i] = total;
            total += size;
        }
        byte* buffer = stackalloc byte[Math.Max(8, total + 8)];
        byte* aligned = (byte*)(((nuint)buffer + 7) & ~(nuint)7);
        var pointers = stackalloc void*[Math.Max(1, n)];
        for (int i = 0; i < n; i++)
        {
            byte* at = aligned + offsets[i];
            switch (args[i])
            {
                case ulong v:
                    *(ulong*)at = v;
                    break;
                case long v:
                    *(long*)at = v;
                    break;
                case int v:
                    *(int*)at = v;
                    break;
                case uint v:
                    *(uint*)at = v;
                    break;
                case float v:
                    *(float*)at = v;
                    break;
                case double v:
                    *(double*)at = v;
                    break;
                default:
                    Marshal.StructureToPtr(args[i], (IntPtr)at, fDeleteOld: false);
                    break;
            }
            pointers[i] = at;
        }
        Driver.Check(Driver.cuLaunchKernel(function, grid, 1, 1, block, 1, 1, sharedBytes, _stream, pointers, null));
    }

    private static int ArgumentSize(object arg) =>
        arg switch
        {
            ulong or long or double => 8,
            int or uint or float => 4,
            null => throw new ArgumentNullException(nameof(arg), "a kernel argument is null"),
            _ => Marshal.SizeOf(arg.GetType()),
        };

    /// <summary>Median milliseconds of <paramref name="iterations"/> runs of <paramref name="enqueue"/>, timed with
    /// events on the stream (after <paramref name="warmup"/> untimed runs).</summary>
    public double TimeMilliseconds(Action enqueue, int iterations, int warmup = 3)
    {
        ArgumentNullException.ThrowIfNull(enqueue);
        for (int i = 0; i < warmup; i++)
            enqueue();
        Synchronize();
        var times = new double[iterations];
        MakeCurrent();
        using var startEvent = EventHandle.Create(ContextHandle, 0);
        using var endEvent = EventHandle.Create(ContextHandle, 0);
        IntPtr start = startEvent.DangerousGetHandle(),
            end = endEvent.DangerousGetHandle();
        for (int i = 0; i < iterations; i++)
        {
            Driver.Check(Driver.cuEventRecord(start, _stream));
            enqueue();
            Driver.Check(Driver.cuEventRecord(end, _stream));
            Driver.Check(Driver.cuEventSynchronize(end));
            Driver.Check(Driver.cuEventElapsedTime(out float ms, start, end));
            times[i] = ms;
        }
        Array.Sort(times);
        return times[iterations / 2];
    }

    /// <summary>The engine's kernel <paramref name="name"/> from <paramref name="file"/>, its module loaded
    /// once.</summary>
    internal IntPtr Function(string file, string name)
    {
        lock (_modules)
        {
            if (!_modules.TryGetValue(file, out var m))
                _modules[file] = m = LoadKernels(file);
            return m.Function(name);
        }
    }
}
