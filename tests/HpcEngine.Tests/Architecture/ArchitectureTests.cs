using System.Reflection;
using System.Text.RegularExpressions;

namespace HpcEngine.Tests.Architecture;

/// <summary>Rules of docs/ARCHITECTURE.md that a change can break without any behaviour test noticing. Each names
/// the files that break it.</summary>
[TestFixture]
public class ArchitectureTests
{
    private static string Root() => TestSupport.RepositoryRoot();

    private static IEnumerable<string> Sources(string under) =>
        Directory
            .EnumerateFiles(Path.Combine(Root(), under), "*.cs", SearchOption.AllDirectories)
            .Where(f =>
                !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains(
                    $"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}",
                    StringComparison.Ordinal
                )
            );

    private static string Rel(string f) => Path.GetRelativePath(Root(), f);

    [Test]
    public void The_core_references_neither_cuda_nor_the_cli()
    {
        var refs = typeof(Tensor).Assembly.GetReferencedAssemblies().Select(a => a.Name).ToList();
        Assert.That(
            refs,
            Has.None.StartsWith("HpcEngine.Cuda")
                .And.None.EqualTo("hpcengine")
                .And.None.StartsWith("HpcEngine.Datasets")
                .And.None.StartsWith("HpcEngine.Serving")
                .And.None.StartsWith("HpcEngine.Onnx")
                .And.None.StartsWith("Microsoft.AspNetCore")
                .And.None.StartsWith("Google.Protobuf")
                .And.None.StartsWith("Prometheus")
                .And.None.StartsWith("SkiaSharp"),
            string.Join(", ", refs)
        );
    }

    [Test]
    public void The_cuda_backend_builds_against_the_public_api_only()
    {
        // HpcEngine.Cuda is written as any application's backend would be: IBackend, DeviceBackends, BackendTensors,
        // Work.FromTask, CollectiveShapes. Only the tests and the benchmarks see the core's internals.
        var friends = typeof(Tensor)
            .Assembly.GetCustomAttributes<System.Runtime.CompilerServices.InternalsVisibleToAttribute>()
            .Select(a => a.AssemblyName)
            .ToList();
        Assert.That(friends, Is.EquivalentTo(new[] { "HpcEngine.Tests", "HpcEngine.Bench" }));
    }

    [Test]
    public void Native_imports_live_only_in_interop_folders()
    {
        var offenders = Sources("src")
            .Where(f =>
                !f.Contains(
                    $"{Path.DirectorySeparatorChar}Interop{Path.DirectorySeparatorChar}",
                    StringComparison.Ordinal
                )
            )
            .Where(f => Regex.IsMatch(File.ReadAllText(f), @"\[(DllImport|LibraryImport)\("))
            .Select(Rel)
            .ToList();
        Assert.That(offenders, Is.Empty);
    }

    [Test]
    public void Environment_variables_are_read_only_by_the_options_classes()
    {
        // One reader per layer: EngineOptions (core), TcpOptions (transport), DistributedEnvironment (the launcher
        // contract), CudaOptions, CliEnvironment, and the dataset loader's default (DataSources, HPCENGINE_DATA); all
        // listed in docs/ENVIRONMENT.md. The loop, the ops and the strategies take typed settings.
        var offenders = Sources("src")
            .Where(f =>
                !Path.GetFileName(f).EndsWith("Options.cs", StringComparison.Ordinal)
                && !Path.GetFileName(f).EndsWith("Environment.cs", StringComparison.Ordinal)
                && Path.GetFileName(f) != "DataSources.cs"
            )
            .Where(f => File.ReadAllText(f).Contains("GetEnvironmentVariable", StringComparison.Ordinal))
            .Select(Rel)
            .ToList();
        Assert.That(offenders, Is.Empty);
    }

    [TestCase("src/HpcEngine/Training")]
    [TestCase("src/HpcEngine/Parallel")]
    [TestCase("src/HpcEngine/Compression")]
    [TestCase("src/HpcEngine/Data")]
    [TestCase("src/HpcEngine/Optim")]
    public void Library_code_names_settings_not_cli_flags(string folder)
    {
        // The library's errors name TrainConfig properties ({Lr}, TrainConfigException); the CLI words them as its
        // flags. A "--flag" in a string here would be wrong for every embedding tool.
        var flag = new Regex("\"[^\"\n]*(?<![\\w-])--[a-z][a-z-]*");
        var offenders = Sources(folder)
            .SelectMany(f => File.ReadAllLines(f).Select((line, i) => (f, i, line)))
            .Where(x => !x.line.TrimStart().StartsWith("//", StringComparison.Ordinal) && flag.IsMatch(x.line))
            .Select(x => $"{Rel(x.f)}:{x.i + 1}")
            .ToList();
        Assert.That(offenders, Is.Empty);
    }

    [TestCase("src/HpcEngine/Ops")]
    [TestCase("src/HpcEngine/NN")]
    [TestCase("src/HpcEngine/Optim")]
    [TestCase("src/HpcEngine/Parallel")]
    public void Ops_dispatch_through_the_tensors_backend_only(string folder)
    {
        // One op is written once for every device: it calls x.Backend, never a CPU kernel or a device test of its
        // own. The host side of transfers (Ops.Transfer.cs) is the one place the CPU is told apart; the strategies
        // stage codec input through Compression.HostStaging.
        var offenders = Sources(folder)
            .Where(f => !f.EndsWith("Ops.Transfer.cs", StringComparison.Ordinal))
            .Where(f =>
            {
                var text = File.ReadAllText(f);
                return text.Contains(".IsCpu", StringComparison.Ordinal)
                    || text.Contains("Kernels.", StringComparison.Ordinal)
                    || text.Contains("Backends.Cpu", StringComparison.Ordinal)
                    || text.Contains("DeviceBackends.For(", StringComparison.Ordinal);
            })
            .Select(Rel)
            .ToList();
        Assert.That(offenders, Is.Empty);
    }

    [Test]
    public void The_code_is_formatted_to_the_style_of_the_editorconfig()
    {
        // CSharpier (pinned in .config/dotnet-tools.json) formats every C# file to .editorconfig's 120 columns; a
        // file it would change fails here. Fix with `dotnet tool restore && dotnet csharpier format .`. Lines
        // CSharpier cannot shorten (long string literals) are left as they are.
        string root = Root();
        var restore = Dotnet(root, "tool restore");
        if (restore.Exit != 0)
            Assert.Ignore($"could not restore the CSharpier tool (offline?): {restore.Output.Trim()}");
        var check = Dotnet(root, "csharpier check .");
        Assert.That(check.Exit, Is.Zero, $"files not formatted (run `dotnet csharpier format .`):\n{check.Output}");
    }

    private static (int Exit, string Output) Dotnet(string dir, string args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet", args)
        {
            WorkingDirectory = dir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["DOTNET_NOLOGO"] = "1";
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            p.Kill(true);
            Assert.Fail($"dotnet {args} did not finish within 3 minutes");
        }
        return (p.ExitCode, stdout + stderr.Result);
    }

    [Test]
    public void No_source_file_is_over_400_lines()
    {
        // A file names one concept; past 400 lines it holds several (split it: a file per concept, or partial
        // classes by side, as LinkSocket's read and write halves).
        var offenders = Sources("src")
            .Select(f => (File: Rel(f), Lines: File.ReadLines(f).Count()))
            .Where(x => x.Lines > 400)
            .Select(x => $"{x.File} ({x.Lines} lines)")
            .ToList();
        Assert.That(offenders, Is.Empty);
    }

    [Test]
    public void Every_hpcengine_variable_read_is_documented()
    {
        string doc = File.ReadAllText(Path.Combine(Root(), "docs", "ENVIRONMENT.md"));
        var read = Sources("src")
            .SelectMany(f =>
                Regex.Matches(File.ReadAllText(f), "\"(HPCENGINE_[A-Z0-9_]+)\"").Select(m => m.Groups[1].Value)
            )
            .Distinct()
            .Order()
            .ToList();
        Assert.That(read, Is.Not.Empty);
        Assert.That(
            read.Where(v => !doc.Contains(v, StringComparison.Ordinal)),
            Is.Empty,
            "undocumented in docs/ENVIRONMENT.md"
        );
    }
}
