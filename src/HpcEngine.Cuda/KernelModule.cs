using System.Runtime.InteropServices;
using HpcEngine.Cuda.Interop;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Cuda;

/// <summary>A loaded kernel module and its functions by name.</summary>
public sealed class KernelModule : IDisposable
{
    private readonly CudaContext _owner;
    private readonly KernelModuleHandle _handle;
    private IntPtr _module;
    private readonly Dictionary<string, IntPtr> _functions = new(StringComparer.Ordinal);

    internal KernelModule(CudaContext owner, KernelModuleHandle module) =>
        (_owner, _handle, _module) = (owner, module, module.DangerousGetHandle());

    /// <summary>The entry point <paramref name="name"/> (an extern "C" __global__ function).</summary>
    public IntPtr Function(string name)
    {
        if (_functions.TryGetValue(name, out var f))
            return f;
        ObjectDisposedException.ThrowIf(_module == IntPtr.Zero, this);
        _owner.MakeCurrent();
        Driver.Check(Driver.cuModuleGetFunction(out f, _module, name));
        return _functions[name] = f;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_module == IntPtr.Zero)
            return;
        _module = IntPtr.Zero;
        _functions.Clear();
        _handle.Dispose();
    }
}
