using System.Text;
using System.Text.RegularExpressions;
using HpcEngine.Cuda;
using HpcEngine.Cuda.Interop;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Tests.Cuda;

/// <summary>Every kernel compiles with NVRTC for compute_80 and compute_90 with only the engine's own headers — no GPU
/// and no CUDA toolkit needed (CI installs Debian's libnvrtc11.2). A kernel that does not compile fails here.</summary>
[TestFixture]
[Category("Nvrtc")]
public partial class NvrtcCompileTests
{
    private static void RequireNvrtc()
    {
        if (CudaLibraries.Find("nvrtc") == null)
            Assert.Ignore(
                $"NVRTC is not installed (tried {string.Join(", ", CudaLibraries.Candidates("nvrtc"))}); .ci/run installs Debian's libnvrtc11.2"
            );
    }

    public static IEnumerable<TestCaseData> Cases() =>
        from file in KernelSources.Kernels
        from arch in new[] { "compute_80", "compute_90" }
        select new TestCaseData(file, arch).SetName($"{file} for {arch}");

    [GeneratedRegex(@"extern ""C"" __global__ void (\w+)\(")]
    private static partial Regex EntryPoint();

    [TestCaseSource(nameof(Cases))]
    public void Kernel_file_compiles_and_exports_its_entry_points(string file, string arch)
    {
        RequireNvrtc();
        string source = KernelSources.Kernel(file);
        var compiled = NvrtcCompiler.Compile(file, source, arch);
        string ptx = Encoding.UTF8.GetString(compiled.Image);
        Assert.That(compiled.IsCubin, Is.False);
        Assert.That(ptx, Does.Contain(".target sm_" + arch["compute_".Length..]));
        foreach (Match m in EntryPoint().Matches(source))
            Assert.That(ptx, Does.Contain(".entry " + m.Groups[1].Value), $"{file} exports {m.Groups[1].Value}");
    }

    [Test]
    public void Macro_generated_kernels_are_exported_too()
    {
        RequireNvrtc();
        var ptx = Encoding.UTF8.GetString(
            NvrtcCompiler.Compile("elementwise.cu", KernelSources.Kernel("elementwise.cu"), "compute_80").Image
        );
        foreach (
            var name in new[]
            {
                "add_f32",
                "mul_f32",
                "add_broadcast_f32",
                "relu_f32",
                "gelu_backward_f32",
                "sigmoid_backward_f32",
            }
        )
            Assert.That(ptx, Does.Contain(".entry " + name), name);
    }

    [Test]
    public void Kernels_and_helpers_include_no_cuda_toolkit_header()
    {
        foreach (
            var (name, text) in KernelSources
                .Headers.Select(kv => (kv.Key, kv.Value))
                .Concat(KernelSources.Kernels.Select(k => (k, KernelSources.Kernel(k))))
        )
            Assert.That(
                Regex.IsMatch(text, @"#include\s*<(cuda|cublas|curand|cooperative_groups)"),
                Is.False,
                $"{name} includes a toolkit header"
            );
        Assert.That(
            KernelSources.Kernels,
            Has.Count.GreaterThanOrEqualTo(10),
            "the kernel files are embedded in HpcEngine.Cuda"
        );
    }

    [Test]
    public void A_kernel_that_does_not_compile_is_an_error_carrying_the_log()
    {
        RequireNvrtc();
        var ex = Assert.Throws<NvrtcException>(() =>
            NvrtcCompiler.Compile(
                "broken.cu",
                "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
                "compute_80"
            )
        );
        Assert.That(ex!.Message, Does.Contain("broken.cu").And.Contain("undefined_name"));
        Assert.That(ex.Log, Does.Contain("undefined"));
        Assert.Throws<ArgumentException>(() => NvrtcCompiler.Compile("x.cu", "", "ampere"));
    }

    [Test]
    public void The_disk_cache_returns_the_same_image_without_recompiling()
    {
        RequireNvrtc();
        string dir = TestSupport.TempDir("hpc-kcache-");
        try
        {
            Assert.That(
                HpcEngine.Cuda.CudaOptions.FromEnvironment(v => v == "HPCENGINE_KERNEL_CACHE" ? dir : null).KernelCache,
                Is.EqualTo(dir),
                "HPCENGINE_KERNEL_CACHE names the cache"
            );
            var first = NvrtcCompiler.CompileCached("cast.cu", "compute_80", dir);
            var files = Directory.GetFiles(dir);
            Assert.That(files, Has.Length.EqualTo(1));
            Assert.That(Path.GetFileName(files[0]), Does.StartWith("cast-compute_80-").And.EndWith(".ptx"));
            var second = NvrtcCompiler.CompileCached("cast.cu", "compute_80", dir);
            Assert.That(second.Image, Is.EqualTo(first.Image));
            Assert.That(second.Log, Is.Empty, "served from the cache");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}

[TestFixture]
public class CudaLibraryTests
{
    [Test]
    public void Library_names_are_tried_newest_first_and_the_override_directory_before_them()
    {
        Assert.That(
            CudaLibraries.Candidates("cublas").Take(3),
            Is.EqualTo(new[] { "libcublas.so.13", "libcublas.so.12", "libcublas.so.11" })
        );
        Assert.That(CudaLibraries.Candidates("nvrtc"), Does.Contain("libnvrtc.so.11.2"));
        var dir = HpcEngine
            .Cuda.CudaOptions.FromEnvironment(v => v == "HPCENGINE_CUDA_PATH" ? "/opt/cuda-x/lib64" : null)
            .LibraryDir;
        Assert.That(CudaLibraries.Candidates("cuda", dir)[0], Is.EqualTo("/opt/cuda-x/lib64/libcuda.so.1"));
        Assert.Throws<ArgumentException>(() => CudaLibraries.Candidates("cudnn"));
    }

    [Test]
    public void Without_a_driver_the_probe_says_so_and_opening_a_device_is_a_clear_error()
    {
        var report = CudaDevices.Probe();
        if (report.HasDevice)
        {
            Assert.That(report.Devices[0].ComputeMajor, Is.GreaterThanOrEqualTo(5));
            Assert.That(report.ToString(), Does.Contain("cuda:0"));
            return;
        }
        Assert.That(report.Problem, Is.Not.Null.And.Not.Empty);
        Assert.That(report.ToString(), Does.Contain("no GPU"));
        var ex = Assert.Throws<CudaException>(() => CudaContext.Open(0));
        Assert.That(ex!.Message, Does.Contain("cuda:0 is not available"));
        if (CudaLibraries.Find("cuda") == null)
        {
            var missing = Assert.Throws<CudaLibraryNotFoundException>(() => CudaLibraries.Require("cuda"));
            Assert.That(missing!.Message, Does.Contain("libcuda.so.1").And.Contain("HPCENGINE_CUDA_PATH"));
        }
    }

    [Test]
    public void Without_nccl_asking_for_it_names_the_library_and_what_was_tried()
    {
        if (CudaLibraries.Find("nccl") != null)
        {
            Assert.That(NcclCommunicator.Version, Is.GreaterThan(20000));
            return;
        }
        var ex = Assert.Throws<CudaLibraryNotFoundException>(() => _ = NcclCommunicator.Version);
        Assert.That(ex!.Message, Does.Contain("libnccl.so.2").And.Contain("'nccl'"));
    }
}
