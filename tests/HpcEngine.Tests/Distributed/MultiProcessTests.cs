using System.Diagnostics;
using System.Text.Json;

namespace HpcEngine.Tests.Distributed;

/// <summary>Ranks as real processes: through `hpcengine launch`, started by hand (to kill one), and under
/// mpirun.</summary>
[TestFixture]
public class MultiProcessTests
{
    private static void AssertNoWrongResults(string json, int sizes)
    {
        using var j = JsonDocument.Parse(File.ReadAllText(json));
        var results = j.RootElement.GetProperty("results").EnumerateArray().ToArray();
        Assert.That(results, Has.Length.EqualTo(sizes));
        foreach (var r in results)
        {
            Assert.That(r.GetProperty("wrong").GetInt64(), Is.Zero, r.ToString());
            Assert.That(r.GetProperty("busbw_gbps").GetDouble(), Is.GreaterThan(0));
        }
    }

    [TestCase("allreduce")]
    [TestCase("allgather")]
    [TestCase("reducescatter")]
    [TestCase("broadcast")]
    public void Launcher_runs_a_checked_sweep_on_three_processes(string op)
    {
        string json = Path.GetTempFileName();
        try
        {
            var r = TestSupport.RunCli(
                [
                    "launch",
                    "--nproc-per-node",
                    "3",
                    "--",
                    "hpcengine",
                    "bench",
                    "collectives",
                    "--op",
                    op,
                    "--min-bytes",
                    "1024",
                    "--max-bytes",
                    "1048576",
                    "--factor",
                    "32",
                    "--iters",
                    "2",
                    "--warmup",
                    "1",
                    "--check",
                    "--json",
                    json,
                ],
                timeoutSeconds: 120
            );
            Assert.That(r.Exit, Is.Zero, r.Stdout + r.Stderr);
            Assert.That(r.Stdout, Does.Contain("[0] # " + op));
            AssertNoWrongResults(json, 3);
        }
        finally
        {
            File.Delete(json);
        }
    }

    [Test]
    public void Launcher_stops_the_others_and_reports_the_failing_rank()
    {
        var sw = Stopwatch.StartNew();
        var r = TestSupport.RunCli(
            [
                "launch",
                "--nproc-per-node",
                "3",
                "--",
                "sh",
                "-c",
                "if [ \"$RANK\" = 1 ]; then echo boom >&2; exit 3; fi; sleep 60",
            ],
            timeoutSeconds: 60
        );
        Assert.That(r.Exit, Is.EqualTo(3));
        Assert.That(r.Stderr, Does.Contain("[1] boom").And.Contain("rank 1 failed with exit code 3"));
        Assert.That(sw.Elapsed.TotalSeconds, Is.LessThan(30), "the sleeping ranks were stopped, not waited for");
    }

    [Test]
    public void Launcher_restarts_up_to_the_limit()
    {
        string marker = Path.Combine(Path.GetTempPath(), $"hpc-restart-{Guid.NewGuid():N}");
        try
        {
            // Rank 0 fails on the first attempt only (it leaves a marker behind).
            var r = TestSupport.RunCli(
                [
                    "launch",
                    "--nproc-per-node",
                    "2",
                    "--max-restarts",
                    "1",
                    "--",
                    "sh",
                    "-c",
                    $"if [ \"$RANK\" = 0 ] && [ ! -e {marker} ]; then touch {marker}; exit 5; fi; exit 0",
                ],
                timeoutSeconds: 60
            );
            Assert.That(r.Exit, Is.Zero, r.Stderr);
            Assert.That(r.Stderr, Does.Contain("restarting all workers (1/1)"));
        }
        finally
        {
            File.Delete(marker);
        }
    }

    private static List<TestSupport.CliProcess> StartRanks(
        int n,
        string[] args,
        Dictionary<string, string>? extra = null
    )
    {
        int port = TestSupport.FreePort();
        return Enumerable
            .Range(0, n)
            .Select(r =>
            {
                var env = new Dictionary<string, string>
                {
                    ["RANK"] = $"{r}",
                    ["WORLD_SIZE"] = $"{n}",
                    ["MASTER_ADDR"] = "127.0.0.1",
                    ["MASTER_PORT"] = $"{port}",
                };
                if (extra != null)
                    foreach (var (k, v) in extra)
                        env[k] = v;
                return new TestSupport.CliProcess(args, env);
            })
            .ToList();
    }

    private static readonly string[] LongAllReduce32M = LongAllReduce(33554432);

    /// <summary>An allreduce of <paramref name="bytes"/> repeated for far longer than any test waits.</summary>
    private static string[] LongAllReduce(long bytes) =>
        [
            "bench",
            "collectives",
            "--op",
            "allreduce",
            "--min-bytes",
            $"{bytes}",
            "--max-bytes",
            $"{bytes}",
            "--iters",
            bytes < 1 << 20 ? "1000000000" : "100000",
            "--warmup",
            "0",
        ];

    private static void WaitUntilRunning(List<TestSupport.CliProcess> ranks)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!ranks[0].Stdout.Contains("# allreduce over", StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline || ranks.Any(r => r.Process.HasExited))
                Assert.Fail($"ranks did not start: {string.Join(" | ", ranks.Select(r => r.Stderr))}");
            Thread.Sleep(50);
        }
        Thread.Sleep(1500); // inside the timed allreduce loop
    }

    [TestCase("tcp", 33554432)]
    [TestCase("shm", 33554432)]
    [TestCase("shm", 4096)] // the small-op exchange rings, not the link's frames
    public void Sigkill_of_a_rank_fails_the_survivors_within_seconds_naming_it(string transport, long bytes)
    {
        var ranks = StartRanks(3, LongAllReduce(bytes), new() { ["HPCENGINE_TRANSPORT"] = transport });
        try
        {
            WaitUntilRunning(ranks);
            Assert.That(ranks[0].Stdout, Does.Contain($"over {transport} "), "the links use the transport asked for");
            var killed = Stopwatch.StartNew();
            Process.Start("kill", $"-9 {ranks[1].Process.Id}")!.WaitForExit();
            foreach (int r in new[] { 0, 2 })
            {
                Assert.That(ranks[r].WaitForExit(10_000), Is.True, $"rank {r} still running 10 s after the kill");
                Assert.That(
                    killed.Elapsed.TotalSeconds,
                    Is.LessThan(5),
                    $"rank {r} took {killed.Elapsed.TotalSeconds:F1}s to fail"
                );
                Assert.That(ranks[r].Process.ExitCode, Is.Not.Zero);
                Assert.That(ranks[r].Stderr, Does.Contain("allreduce #").And.Contain("rank 1"), ranks[r].Stderr);
            }
        }
        finally
        {
            foreach (var r in ranks)
                r.Dispose();
        }
    }

    [Test]
    public void Sigkill_under_the_launcher_makes_it_exit_non_zero()
    {
        using var launcher = new TestSupport.CliProcess([
            "launch",
            "--nproc-per-node",
            "2",
            "--",
            "hpcengine",
            .. LongAllReduce32M,
        ]);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!launcher.Stdout.Contains("[0] # allreduce", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
            Thread.Sleep(50);
        Thread.Sleep(1000);
        var pid = System
            .Text.RegularExpressions.Regex.Match(launcher.Stderr, @"rank 1 started \(pid (\d+)\)")
            .Groups[1]
            .Value;
        Assert.That(pid, Is.Not.Empty, launcher.Stderr);
        Process.Start("kill", $"-9 {pid}")!.WaitForExit();
        Assert.That(launcher.WaitForExit(15_000), Is.True, "the launcher did not exit");
        Assert.That(launcher.Process.ExitCode, Is.Not.Zero);
        Assert.That(launcher.Stderr, Does.Contain("failed with exit code"));
    }

    [TestCase("tcp", 33554432)]
    [TestCase("shm", 33554432)]
    [TestCase("shm", 4096)]
    public void Sigstop_of_a_rank_fails_the_others_at_their_timeout(string transport, long bytes)
    {
        var ranks = StartRanks(
            3,
            LongAllReduce(bytes),
            new()
            {
                ["HPCENGINE_TIMEOUT_S"] = "5",
                ["HPCENGINE_STALL_WARN_S"] = "1",
                ["HPCENGINE_TRANSPORT"] = transport,
            }
        );
        try
        {
            WaitUntilRunning(ranks);
            Assert.That(ranks[0].Stdout, Does.Contain($"over {transport} "), "the links use the transport asked for");
            var stopped = Stopwatch.StartNew();
            Process.Start("kill", $"-STOP {ranks[2].Process.Id}")!.WaitForExit();
            foreach (int r in new[] { 0, 1 })
            {
                Assert.That(ranks[r].WaitForExit(20_000), Is.True, $"rank {r} did not fail");
                Assert.That(ranks[r].Process.ExitCode, Is.Not.Zero);
                Assert.That(ranks[r].Stderr, Does.Contain("allreduce #"), ranks[r].Stderr);
                // Warned while waiting, and the frozen peer is named by its silence (its kernel still ACKs: TCP sees
                // nothing).
                Assert.That(ranks[r].Stderr, Does.Contain("has made no progress for"), ranks[r].Stderr);
                Assert.That(
                    ranks[r].Stderr,
                    Does.Contain("no word (not even a heartbeat) from rank 2"),
                    ranks[r].Stderr
                );
            }
            Assert.That(stopped.Elapsed.TotalSeconds, Is.GreaterThan(1), "they waited for the frozen peer");
        }
        finally
        {
            Process.Start("kill", $"-CONT {ranks[2].Process.Id}")?.WaitForExit();
            foreach (var r in ranks)
                r.Dispose();
        }
    }

    [TestCase("--strategy", "sync")]
    [TestCase("--strategy", "zero1")]
    [TestCase("--compress", "fp16")]
    public void Data_parallel_training_through_the_launcher_learns(string option, string value)
    {
        string dir = TestSupport.TempDir("hpc-ddp-");
        try
        {
            TestSupport.WriteTinyFashionMnist(dir, 512, 128);
            string json = Path.Combine(dir, "r.json");
            var r = TestSupport.RunCli(
                [
                    "launch",
                    "--nproc-per-node",
                    "2",
                    "--",
                    "hpcengine",
                    "train",
                    "--model",
                    "mlp",
                    "--epochs",
                    "2",
                    "--batch-size",
                    "32",
                    "--data",
                    dir,
                    "--json",
                    json,
                    option,
                    value,
                ],
                timeoutSeconds: 180
            );
            Assert.That(r.Exit, Is.Zero, r.Stdout + r.Stderr);
            Assert.That(r.Stdout, Does.Contain("× 2 ranks (data parallel over tcp").And.Contain(value));
            Assert.That(r.Stdout, Does.Not.Contain("[1] epoch"), "only rank 0 logs");
            using var j = JsonDocument.Parse(File.ReadAllText(json));
            Assert.That(j.RootElement.GetProperty("final_test_accuracy").GetDouble(), Is.GreaterThan(0.5));
            Assert.That(
                j.RootElement.GetProperty("steps").GetInt64(),
                Is.EqualTo(2 * 8),
                "each rank takes 256 of the 512 samples per epoch: 8 steps of 32"
            );
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void Runs_under_mpirun()
    {
        if (!File.Exists("/usr/bin/mpirun"))
            Assert.Ignore("OpenMPI (openmpi-bin) is not installed; .ci/run installs it");
        string json = Path.GetTempFileName();
        try
        {
            var psi = new ProcessStartInfo("mpirun")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (
                var a in new[]
                {
                    "--allow-run-as-root",
                    "--oversubscribe",
                    "-np",
                    "2",
                    "-x",
                    $"MASTER_PORT={TestSupport.FreePort()}",
                    "-x",
                    "HPCENGINE_SPIN_US=0",
                    Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet",
                    Path.Combine(AppContext.BaseDirectory, "hpcengine.dll"),
                    "bench",
                    "collectives",
                    "--op",
                    "allreduce",
                    "--min-bytes",
                    "1024",
                    "--max-bytes",
                    "65536",
                    "--factor",
                    "8",
                    "--iters",
                    "2",
                    "--check",
                    "--json",
                    json,
                }
            )
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var err = p.StandardError.ReadToEndAsync();
            var outp = p.StandardOutput.ReadToEndAsync();
            Assert.That(p.WaitForExit(120_000), Is.True, "mpirun did not finish");
            Assert.That(p.ExitCode, Is.Zero, outp.Result + err.Result);
            AssertNoWrongResults(json, 3);
        }
        finally
        {
            File.Delete(json);
        }
    }
}
