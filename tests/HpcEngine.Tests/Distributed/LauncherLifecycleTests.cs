using System.Diagnostics;
using System.Text.RegularExpressions;

namespace HpcEngine.Tests.Distributed;

/// <summary>The launcher never leaks workers and never loses their last words: signals are forwarded, a SIGKILLed
/// launcher takes its workers with it, a failure gives the others time to report.</summary>
[TestFixture, NonParallelizable]
public class LauncherLifecycleTests
{
    private static List<int> WorkerPids(TestSupport.CliProcess launcher, int n)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var pids = Regex
                .Matches(launcher.Stderr, @"rank \d+ started \(pid (\d+)\)")
                .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
                .ToList();
            if (pids.Count == n)
                return pids;
            if (DateTime.UtcNow > deadline || launcher.Process.HasExited)
                Assert.Fail("workers did not start: " + launcher.Stderr);
            Thread.Sleep(50);
        }
    }

    private static void WaitForLines(TestSupport.CliProcess launcher, params string[] lines)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!lines.All(l => launcher.Stdout.Contains(l, StringComparison.Ordinal)))
        {
            if (DateTime.UtcNow > deadline || launcher.Process.HasExited)
                Assert.Fail("workers did not get ready: " + launcher.Stdout + launcher.Stderr);
            Thread.Sleep(20);
        }
    }

    private static bool Alive(int pid) =>
        File.Exists($"/proc/{pid}/stat")
        && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);

    private static void AssertGone(IEnumerable<int> pids, int seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        foreach (int pid in pids)
        {
            while (Alive(pid) && DateTime.UtcNow < deadline)
                Thread.Sleep(50);
            Assert.That(Alive(pid), Is.False, $"worker {pid} outlived its launcher");
        }
    }

    private static string SignalDispositions(int pid) =>
        string.Join(
            ", ",
            File.ReadAllLines($"/proc/{pid}/status").Where(l => l.StartsWith("Sig", StringComparison.Ordinal))
        );

    private static void KillPids(IEnumerable<int> pids)
    {
        foreach (int p in pids)
            try
            {
                Process.GetProcessById(p).Kill();
            }
            catch (ArgumentException) { }
            catch (InvalidOperationException) { }
    }

    [TestCase("TERM", 143)]
    [TestCase("INT", 130)]
    [TestCase("HUP", 129)]
    public void A_signal_to_the_launcher_is_forwarded_and_every_worker_stops(string signal, int exitCode)
    {
        // A process started with SIGINT ignored keeps it ignored (.NET, like Python and the shells, honours the
        // "background job" convention), and a suite run from a script's background job has it so: start the launcher
        // with default dispositions, as a terminal would.
        using var launcher = new TestSupport.CliProcess(
            [
                "launch",
                "--nproc-per-node",
                "2",
                "--grace-period",
                "5",
                "--",
                "sh",
                "-c",
                $"trap 'echo rank $RANK got {signal}; exit 0' {signal}; echo trap set; while true; do sleep 0.1; done",
            ],
            wrapper: ["env", "--default-signal=INT,QUIT"]
        );
        var pids = WorkerPids(launcher, 2);
        WaitForLines(launcher, "[0] trap set", "[1] trap set");
        string dispositions = SignalDispositions(launcher.Process.Id);
        Process.Start("kill", $"-{signal} {launcher.Process.Id}")!.WaitForExit();
        // A bound on a hang, not a timing: 5 s grace plus draining, with room for a loaded 2-core CI machine.
        bool exited = launcher.WaitForExit(45_000);
        try
        {
            Assert.That(
                exited,
                Is.True,
                "the launcher did not exit; its signal masks: "
                    + dispositions
                    + "; its output so far:\n"
                    + launcher.Stdout
                    + launcher.Stderr
            );
            launcher.Process.WaitForExit();
            Assert.That(launcher.Process.ExitCode, Is.EqualTo(exitCode));
            Assert.That(
                launcher.Stdout,
                Does.Contain($"[0] rank 0 got {signal}").And.Contain($"[1] rank 1 got {signal}"),
                "the workers saw the signal and could clean up"
            );
            AssertGone(pids, 5);
        }
        finally
        {
            KillPids(pids);
        }
    }

    [Test]
    public void A_worker_that_ignores_the_signal_is_killed_after_the_grace_period()
    {
        using var launcher = new TestSupport.CliProcess([
            "launch",
            "--nproc-per-node",
            "1",
            "--grace-period",
            "1",
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo trap set; while true; do sleep 0.1; done",
        ]);
        var pids = WorkerPids(launcher, 1);
        WaitForLines(launcher, "[0] trap set");
        Process.Start("kill", $"-TERM {launcher.Process.Id}")!.WaitForExit();
        Assert.That(launcher.WaitForExit(20_000), Is.True);
        try
        {
            Assert.That(launcher.Stderr, Does.Contain("still running: SIGKILL"));
            AssertGone(pids, 5);
        }
        finally
        {
            KillPids(pids);
        }
    }

    [TestCase("hpcengine")]
    [TestCase("other program")]
    public void A_sigkilled_launcher_takes_its_workers_with_it(string kind)
    {
        string[] worker =
            kind == "hpcengine"
                ?
                [
                    "hpcengine",
                    "bench",
                    "collectives",
                    "--op",
                    "allreduce",
                    "--min-bytes",
                    "4096",
                    "--max-bytes",
                    "4096",
                    "--iters",
                    "10000000",
                    "--warmup",
                    "0",
                ]
                : ["sh", "-c", "exec sleep 120"];
        using var launcher = new TestSupport.CliProcess(["launch", "--nproc-per-node", "2", "--", .. worker]);
        var pids = WorkerPids(launcher, 2);
        // the workers are up (an hpcengine worker ties itself to the launcher at start)
        Thread.Sleep(kind == "hpcengine" ? 3000 : 500);
        try
        {
            foreach (int pid in pids)
                Assert.That(Alive(pid), Is.True, "worker running before the kill");
            Process.Start("kill", $"-KILL {launcher.Process.Id}")!.WaitForExit();
            AssertGone(pids, 10);
        }
        finally
        {
            KillPids(pids);
        }
    }

    [Test]
    public void When_a_worker_fails_the_others_get_time_to_report_and_its_error_is_summarised()
    {
        var sw = Stopwatch.StartNew();
        var r = TestSupport.RunCli(
            [
                "launch",
                "--nproc-per-node",
                "2",
                "--grace-period",
                "60",
                "--",
                "sh",
                "-c",
                "if [ \"$RANK\" = 1 ]; then echo 'boom: disk full' >&2; exit 3; fi; sleep 1; echo 'rank 0: saw the "
                    + "failure, saving my report' >&2; exit 4",
            ],
            timeoutSeconds: 60
        );
        Assert.That(r.Exit, Is.EqualTo(3), r.Stderr);
        Assert.That(
            r.Stderr,
            Does.Contain("[0] rank 0: saw the failure, saving my report"),
            "rank 0 was not killed before it could report"
        );
        Assert.That(
            r.Stderr,
            Does.Contain("rank 1 failed first (exit code 3)")
                .And.Contain("|   boom: disk full".Replace("|   ", "| ", StringComparison.Ordinal))
        );
        Assert.That(r.Stderr, Does.Contain("exit codes: rank 0 4, rank 1 3"));
        Assert.That(
            sw.Elapsed.TotalSeconds,
            Is.LessThan(50),
            "rank 0 exited on its own after 1 s: the 60 s grace period is not waited out"
        );
    }

    [Test]
    public void A_stopped_workers_children_are_stopped_too()
    {
        // Rank 0 is a shell whose child would outlive it (a shell does not pass SIGTERM on); rank 1 fails.
        var r = TestSupport.RunCli(
            [
                "launch",
                "--nproc-per-node",
                "2",
                "--grace-period",
                "1",
                "--",
                "sh",
                "-c",
                "if [ \"$RANK\" = 1 ]; then sleep 2; exit 3; fi; sleep 300 & echo child $!; wait",
            ],
            timeoutSeconds: 60
        );
        Assert.That(r.Exit, Is.EqualTo(3), r.Stderr);
        var child = Regex.Match(r.Stdout, @"\[0\] child (\d+)");
        Assert.That(child.Success, Is.True, r.Stdout);
        int pid = int.Parse(child.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            AssertGone([pid], 5);
        }
        finally
        {
            KillPids([pid]);
        }
    }

    [Test]
    public void Workers_get_a_random_token_and_job_id_unless_given()
    {
        var r = TestSupport.RunCli(
            [
                "launch",
                "--nproc-per-node",
                "2",
                "--rdzv-id",
                "my-job",
                "--",
                "sh",
                "-c",
                "echo \"job=$HPCENGINE_JOB_ID token=${#HPCENGINE_TOKEN}\"",
            ],
            timeoutSeconds: 60
        );
        Assert.That(r.Exit, Is.Zero, r.Stderr);
        Assert.That(Regex.Matches(r.Stdout, "job=my-job token=64"), Has.Count.EqualTo(2));
        var a = TestSupport.RunCli(
            [
                "launch",
                "--nproc_per_node",
                "1",
                "--standalone",
                "--",
                "sh",
                "-c",
                "echo \"$HPCENGINE_JOB_ID $HPCENGINE_TOKEN\"",
            ],
            timeoutSeconds: 60
        );
        var b = TestSupport.RunCli(
            [
                "launch",
                "--nproc_per_node",
                "1",
                "--standalone",
                "--",
                "sh",
                "-c",
                "echo \"$HPCENGINE_JOB_ID $HPCENGINE_TOKEN\"",
            ],
            timeoutSeconds: 60
        );
        Assert.That(a.Exit + b.Exit, Is.Zero, a.Stderr + b.Stderr);
        Assert.That(a.Stdout.Trim(), Does.Match(@"^\[0\] job-[0-9a-f]{8} [0-9A-F]{64}$"));
        Assert.That(a.Stdout, Is.Not.EqualTo(b.Stdout), "each job its own id and secret");
    }

    [Test]
    public void Torchrun_spellings_and_auto_are_understood()
    {
        var r = TestSupport.RunCli(
            [
                "launch",
                "--nproc_per_node",
                "auto",
                "--rdzv-endpoint",
                "127.0.0.1:0",
                "--",
                "sh",
                "-c",
                "echo \"$WORLD_SIZE $MASTER_ADDR\"",
            ],
            timeoutSeconds: 60
        );
        Assert.That(r.Exit, Is.Zero, r.Stderr);
        Assert.That(r.Stdout, Does.Contain($"[0] {Environment.ProcessorCount} 127.0.0.1"));
        var bad = TestSupport.RunCli(["launch", "--rdzv-endpoint", "nohost", "--", "true"], timeoutSeconds: 30);
        Assert.That(bad.Exit, Is.EqualTo(2));
        Assert.That(bad.Stderr, Does.Contain("--rdzv-endpoint must be HOST:PORT"));
        var multi = TestSupport.RunCli(["launch", "--nnodes", "2", "--", "true"], timeoutSeconds: 30);
        Assert.That(multi.Exit, Is.EqualTo(2));
        Assert.That(multi.Stderr, Does.Contain("--master-port (or --rdzv-endpoint HOST:PORT) is required"));
    }
}
