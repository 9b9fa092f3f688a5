using System.Text;
using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda;

/// <summary>One CUDA device as the driver describes it.</summary>
public sealed record CudaDeviceInfo(
    int Index,
    string Name,
    int ComputeMajor,
    int ComputeMinor,
    long TotalBytes,
    int Multiprocessors
)
{
    /// <summary>"sm_90" for compute capability 9.0: the CUBIN target NVRTC compiles for.</summary>
    public string Architecture => $"sm_{ComputeMajor}{ComputeMinor}";
}

/// <summary>What this machine offers for CUDA: driver, devices and libraries, or in plain words why there is
/// none.</summary>
public sealed record CudaReport(
    int? DriverVersion,
    IReadOnlyList<CudaDeviceInfo> Devices,
    IReadOnlyDictionary<string, string?> Libraries,
    string? Problem
)
{
    /// <summary>Whether at least one device was found.</summary>
    public bool HasDevice => Devices.Count > 0;

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder();
        if (DriverVersion is int v)
            sb.Append($"CUDA driver {v / 1000}.{v % 1000 / 10}\n");
        if (Problem != null)
            sb.Append($"no GPU: {Problem}\n");
        foreach (var d in Devices)
            sb.Append(
                $"cuda:{d.Index}  {d.Name}  compute {d.ComputeMajor}.{d.ComputeMinor}  {d.TotalBytes / (1 << 30)} GiB  "
                    + $"{d.Multiprocessors} SMs\n"
            );
        foreach (var (lib, path) in Libraries)
            sb.Append(
                $"{lib, -9} {path ?? "not found (tried " + string.Join(", ", CudaLibraries.Candidates(lib)) + ")"}\n"
            );
        return sb.ToString().TrimEnd();
    }
}

/// <summary>Finds CUDA devices without ever throwing: <see cref="Probe"/> says what is there and, when nothing is,
/// why (no driver library, a driver without a device, a failing cuInit).</summary>
public static class CudaDevices
{
    /// <summary>What the driver reports: the devices with their properties, or why there are none. Never
    /// throws.</summary>
    public static unsafe CudaReport Probe()
    {
        var libs = new[] { "cuda", "nvrtc", "cublas", "nccl" }.ToDictionary(l => l, CudaLibraries.Find);
        if (libs["cuda"] == null)
            return new CudaReport(
                null,
                [],
                libs,
                $"no NVIDIA driver (libcuda.so.1 not found; tried {string.Join(", ", CudaLibraries.Candidates("cuda"))})"
            );
        int init = Driver.cuInit(0);
        Driver.cuDriverGetVersion(out int version);
        if (init == Driver.ErrorNoDevice)
            return new CudaReport(
                version,
                [],
                libs,
                "the NVIDIA driver is installed but reports no device (CUDA_ERROR_NO_DEVICE)"
            );
        if (init != Driver.Success)
            return new CudaReport(version, [], libs, $"cuInit failed with CUDA error {init}");
        Driver.Check(Driver.cuDeviceGetCount(out int count));
        var devices = new List<CudaDeviceInfo>();
        for (int i = 0; i < count; i++)
        {
            Driver.Check(Driver.cuDeviceGet(out int dev, i));
            var name = new byte[256];
            fixed (byte* p = name)
                Driver.Check(Driver.cuDeviceGetName(p, name.Length, dev));
            Driver.Check(Driver.cuDeviceGetAttribute(out int major, Driver.AttrComputeCapabilityMajor, dev));
            Driver.Check(Driver.cuDeviceGetAttribute(out int minor, Driver.AttrComputeCapabilityMinor, dev));
            Driver.Check(Driver.cuDeviceGetAttribute(out int sms, Driver.AttrMultiprocessorCount, dev));
            Driver.Check(Driver.cuDeviceTotalMem(out nuint total, dev));
            devices.Add(
                new CudaDeviceInfo(i, Encoding.UTF8.GetString(name).TrimEnd('\0'), major, minor, (long)total, sms)
            );
        }
        return new CudaReport(version, devices, libs, count == 0 ? "the driver reports zero devices" : null);
    }
}
