using System.Diagnostics;
using System.IO.Compression;
using HpcEngine.Data;

namespace HpcEngine.Tests;

/// <summary>Helpers shared by tests: temporary directories, a tiny Fashion-MNIST-shaped dataset, and running the CLI
/// as a child process with a wall-clock bound.</summary>
internal static class TestSupport
{
    public static string TempDir(string prefix) => Directory.CreateTempSubdirectory(prefix).FullName;

    /// <summary>The repository root (where HpcEngine.sln is), for tests that read the sources or the docs; the test is
    /// ignored, with the reason, where the binaries were copied away from them.</summary>
    public static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "HpcEngine.sln")))
                return d.FullName;
        Assert.Ignore("the sources are not beside the test binaries (HpcEngine.sln not found above them)");
        return "";
    }

    /// <summary>Writes the four Fashion-MNIST files (gzip IDX) with random 28×28 images whose class is learnable:
    /// class k brightens row band k.</summary>
    public static void WriteTinyFashionMnist(string dir, int train, int test, int seed = 0)
    {
        var rng = new Random(seed);
        void Split(string images, string labels, int n)
        {
            var px = new byte[n * 784];
            var lb = new byte[n];
            for (int i = 0; i < n; i++)
            {
                lb[i] = (byte)rng.Next(10);
                for (int p = 0; p < 784; p++)
                    px[i * 784 + p] = (byte)(rng.Next(60) + (p / 28 / 3 == lb[i] ? 150 : 0));
            }
            WriteGz(Path.Combine(dir, images), 0x08, [n, 28, 28], px);
            WriteGz(Path.Combine(dir, labels), 0x08, [n], lb);
        }
        Split(FashionMnist.Files[0], FashionMnist.Files[1], train);
        Split(FashionMnist.Files[2], FashionMnist.Files[3], test);
    }

    public static void WriteGz(string path, byte type, int[] dims, byte[] payload)
    {
        using var fs = File.Create(path);
        using var gz = new GZipStream(fs, CompressionLevel.Fastest);
        Idx.Write(gz, type, dims, payload);
    }

    /// <summary>A started `hpcengine ARGS` process with its output collected in the background.</summary>
    public sealed class CliProcess : IDisposable
    {
        public Process Process { get; }
        private readonly System.Text.StringBuilder _out = new(),
            _err = new();

        /// <param name="wrapper">A command the CLI runs under (e.g. <c>ip netns exec NS</c>), or null.</param>
        public CliProcess(
            IEnumerable<string> args,
            Dictionary<string, string>? env = null,
            IReadOnlyList<string>? wrapper = null
        )
        {
            var psi = Psi(args, env);
            if (wrapper != null)
            {
                var inner = new List<string> { psi.FileName };
                inner.AddRange(psi.ArgumentList);
                psi.FileName = wrapper[0];
                psi.ArgumentList.Clear();
                foreach (var a in wrapper.Skip(1).Concat(inner))
                    psi.ArgumentList.Add(a);
            }
            Process = new Process { StartInfo = psi, EnableRaisingEvents = true };
            Process.OutputDataReceived += (_, e) =>
            {
                if (e.Data != null)
                    lock (_out)
                        _out.AppendLine(e.Data);
            };
            Process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data != null)
                    lock (_err)
                        _err.AppendLine(e.Data);
            };
            Process.Start();
            Process.BeginOutputReadLine();
            Process.BeginErrorReadLine();
        }

        public string Stdout
        {
            get
            {
                lock (_out)
                    return _out.ToString();
            }
        }
        public string Stderr
        {
            get
            {
                lock (_err)
                    return _err.ToString();
            }
        }

        /// <summary>
        /// Waits for the process to exit and then for its redirected output to be read to the end:
        /// <see cref="Process.WaitForExit(int)"/> alone returns before the asynchronous readers have
        /// delivered the last lines, so a test that reads <see cref="Stdout"/> right after it can miss them.
        /// </summary>
        public bool WaitForExit(TimeSpan timeout)
        {
            if (!Process.WaitForExit(timeout))
                return false;
            Process.WaitForExit();
            return true;
        }

        /// <inheritdoc cref="WaitForExit(TimeSpan)"/>
        public bool WaitForExit(int milliseconds) => WaitForExit(TimeSpan.FromMilliseconds(milliseconds));

        public void Dispose()
        {
            try
            {
                if (!Process.HasExited)
                    Process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException) { }
            Process.Dispose();
        }
    }

    public static ProcessStartInfo Psi(IEnumerable<string> args, Dictionary<string, string>? env)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "hpcengine.dll");
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        var psi = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(dll);
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        psi.Environment["HPCENGINE_SPIN_US"] = "0";
        psi.Environment["HPCENGINE_NUM_THREADS"] = "1";
        if (env != null)
            foreach (var (k, v) in env)
                psi.Environment[k] = v;
        return psi;
    }

    public static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        int p = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }

    /// <summary>Runs `hpcengine ARGS` (the CLI built beside the tests) and returns exit code and output.</summary>
    public static (int Exit, string Stdout, string Stderr) RunCli(
        IEnumerable<string> args,
        int timeoutSeconds = 240,
        Dictionary<string, string>? env = null
    )
    {
        var psi = Psi(args, env);
        psi.Environment.Remove("HPCENGINE_NUM_THREADS"); // the CLI under test picks its own thread count
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"hpcengine {string.Join(' ', args)} did not finish within {timeoutSeconds}s");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
