using System.Diagnostics;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Tests.Cuda;

/// <summary>Ahead-of-time fatbins are used only when their stamp matches the embedded sources: the stamp CMake writes
/// equals the engine's, and a missing, stale or absent fatbin sends the loader to NVRTC with the reason.</summary>
[TestFixture]
public class KernelImageTests
{
    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "HpcEngine.sln")))
                return d.FullName;
        throw new InvalidOperationException("the repository root (HpcEngine.sln) is not above the test assembly");
    }

    [TestCaseSource(typeof(KernelSources), nameof(KernelSources.Kernels))]
    public void The_stamp_cmake_writes_is_the_engines(string file)
    {
        string root = RepoRoot(),
            outFile = Path.GetTempFileName();
        try
        {
            ProcessStartInfo psi;
            try
            {
                psi = new ProcessStartInfo(
                    "cmake",
                    [
                        $"-DSRC={Path.Combine(root, "native", "kernels", file)}",
                        $"-DINCLUDE_DIR={Path.Combine(root, "native", "include")}",
                        $"-DOUT={outFile}",
                        "-P",
                        Path.Combine(root, "cmake", "KernelStamp.cmake"),
                    ]
                )
                {
                    RedirectStandardError = true,
                };
                using var p = Process.Start(psi)!;
                Assert.That(p.WaitForExit(60_000), Is.True, "cmake hung");
                Assert.That(p.ExitCode, Is.Zero, p.StandardError.ReadToEnd());
            }
            catch (System.ComponentModel.Win32Exception)
            {
                Assert.Ignore("cmake is not installed (.ci/run installs it)");
            }
            Assert.That(File.ReadAllText(outFile).Trim(), Is.EqualTo(KernelImages.Stamp(file)));
        }
        finally
        {
            File.Delete(outFile);
        }
    }

    [Test]
    public void Only_an_up_to_date_fatbin_is_chosen_and_otherwise_the_reason_is_given()
    {
        var dir = Directory.CreateTempSubdirectory("hpc-fatbin").FullName;
        try
        {
            string stamp = KernelImages.Stamp("softmax.cu");
            Assert.That(KernelImages.FindFatbin("softmax.cu", stamp, [dir], out var why), Is.Null);
            Assert.That(why, Does.Contain("no softmax.fatbin"));

            var fatbin = Path.Combine(dir, "softmax.fatbin");
            File.WriteAllBytes(fatbin, [1, 2, 3]);
            Assert.That(KernelImages.FindFatbin("softmax.cu", stamp, [dir], out why), Is.Null);
            Assert.That(why, Does.Contain("no stamp"));

            File.WriteAllText(fatbin + ".sha256", KernelImages.Stamp("reduce.cu"));
            Assert.That(KernelImages.FindFatbin("softmax.cu", stamp, [dir], out why), Is.Null);
            Assert.That(why, Does.Contain("stale"));

            File.WriteAllText(fatbin + ".sha256", stamp.ToUpperInvariant() + "\n");
            Assert.That(KernelImages.FindFatbin("softmax.cu", stamp, [dir], out why), Is.EqualTo(fatbin));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void The_stamp_changes_with_the_source_and_with_any_header()
    {
        var headers = new Dictionary<string, string> { ["hpc/a.cuh"] = "int a;", ["hpc/b.cuh"] = "int b;" };
        string s = KernelImages.Stamp("k", headers);
        Assert.That(KernelImages.Stamp("k2", headers), Is.Not.EqualTo(s));
        Assert.That(
            KernelImages.Stamp("k", new Dictionary<string, string>(headers) { ["hpc/b.cuh"] = "int c;" }),
            Is.Not.EqualTo(s)
        );
        Assert.That(
            KernelImages.Stamp(
                "k",
                new Dictionary<string, string> { ["hpc/b.cuh"] = "int b;", ["hpc/a.cuh"] = "int a;" }
            ),
            Is.EqualTo(s),
            "header order does not matter"
        );
    }
}
