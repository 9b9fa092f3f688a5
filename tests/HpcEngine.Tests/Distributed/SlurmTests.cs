using System.Text.Json;

namespace HpcEngine.Tests.Distributed;

/// <summary>`hpcengine train` under a real Slurm: srun with several tasks is one data-parallel job, no flags
/// needed.</summary>
[TestFixture, Category("Slurm"), NonParallelizable]
public class SlurmTests
{
    [Test]
    public void Srun_with_two_tasks_is_one_two_rank_job()
    {
        using var slurm = SlurmCluster.Start();
        string dir = TestSupport.TempDir("hpc-srun-");
        try
        {
            TestSupport.WriteTinyFashionMnist(dir, 512, 128);
            string json = Path.Combine(dir, "r.json");
            string output = slurm.Run(
                "srun",
                "-n",
                "2",
                "--export=ALL,HPCENGINE_NUM_THREADS=1,HPCENGINE_SPIN_US=0",
                System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet",
                Path.Combine(AppContext.BaseDirectory, "hpcengine.dll"),
                "train",
                "--model",
                "mlp",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--data",
                dir,
                "--json",
                json
            );
            Assert.That(output, Does.Contain("× 2 ranks (data parallel over tcp"), output);
            Assert.That(
                output.Split('\n').Count(l => l.StartsWith("data: ", StringComparison.Ordinal)),
                Is.EqualTo(1),
                "one job, not two separate trainings: " + output
            );
            using var j = JsonDocument.Parse(File.ReadAllText(json));
            Assert.That(j.RootElement.GetProperty("workers").GetInt32(), Is.EqualTo(2));
            Assert.That(
                j.RootElement.GetProperty("steps").GetInt64(),
                Is.EqualTo(512 / (32 * 2)),
                "each rank took half the data"
            );
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void An_elastic_srun_job_that_loses_a_task_goes_on_with_the_others()
    {
        using var slurm = SlurmCluster.Start();
        string dir = TestSupport.TempDir("hpc-srun-elastic-");
        try
        {
            TestSupport.WriteTinyFashionMnist(dir, 512, 128);
            string json = Path.Combine(dir, "r.json");
            // Task 2 kills itself with SIGKILL at step 3 (kill -9 of one step task); srun does not end the step for it
            // (no --kill-on-bad-exit), and the two left recover per step.
            string output = slurm.Run(
                "srun",
                "-n",
                "3",
                "--overcommit", // three tasks on however few cores this machine has
                "--immediate=60", // no allocation within a minute is a failure, not a hang
                "--export=ALL,HPCENGINE_NUM_THREADS=1,HPCENGINE_SPIN_US=0",
                System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet",
                Path.Combine(AppContext.BaseDirectory, "hpcengine.dll"),
                "train",
                "--model",
                "mlp",
                "--epochs",
                "2",
                "--batch-size",
                "32",
                "--data",
                dir,
                "--elastic",
                "--fault-plan",
                "kill:rank=2,step=3",
                "--json",
                json
            );
            Assert.That(output, Does.Contain("elastic: member 2 lost; generation 1 has 2 rank(s)"), output);
            using var j = JsonDocument.Parse(File.ReadAllText(json));
            var r = j.RootElement;
            Assert.That(r.GetProperty("status").GetString(), Is.EqualTo("completed"));
            Assert.That(r.GetProperty("workers").GetInt32(), Is.EqualTo(2));
            var lost = r.GetProperty("membership").EnumerateArray().Single();
            Assert.That(lost.GetProperty("kind").GetString(), Is.EqualTo("lost"));
            Assert.That(lost.GetProperty("rank").GetInt32(), Is.EqualTo(2));
            Assert.That(
                r.GetProperty("samples_seen").GetInt64(),
                Is.EqualTo(r.GetProperty("samples_expected").GetInt64())
            );
            Assert.That(r.GetProperty("replica_hash_agree").GetBoolean(), Is.True);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void A_requeued_sbatch_job_resumes_from_its_checkpoint()
    {
        using var slurm = SlurmCluster.Start();
        string dir = TestSupport.TempDir("hpc-requeue-");
        try
        {
            string data = Path.Combine(dir, "data"),
                bin = Path.Combine(dir, "bin"),
                ck = Path.Combine(dir, "ck");
            Directory.CreateDirectory(data);
            Directory.CreateDirectory(bin);
            TestSupport.WriteTinyFashionMnist(data, 256, 64);
            // The recipe calls `hpcengine`: here, the CLI built beside the tests.
            string wrapper = Path.Combine(bin, "hpcengine");
            File.WriteAllText(
                wrapper,
                $"#!/bin/sh\nexec \"{System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet"}\" \"{Path.Combine(AppContext.BaseDirectory, "hpcengine.dll")}\" \"$@\"\n"
            );
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(
                    wrapper,
                    UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                );
            string recipe = Path.Combine(TestSupport.RepositoryRoot(), "docs", "deploy", "slurm", "train.sbatch");
            string path = $"{bin}:{System.Environment.GetEnvironmentVariable("PATH")}";
            string id = slurm
                .Run(
                    "sbatch",
                    "--parsable",
                    "--nodes=1",
                    $"--chdir={dir}",
                    $"--export=ALL,PATH={path},HPCENGINE_DATA={data},MODEL=mlp,EPOCHS=150,CKPT={ck},HPCENGINE_NUM_THREADS=1,HPCENGINE_SPIN_US=0",
                    recipe
                )
                .Trim();
            Assert.That(id, Does.Match(@"^\d+$"), "sbatch: " + id);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (!File.Exists(Path.Combine(ck, "checkpoint.json")))
            {
                Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(90)), "no checkpoint: " + Log(dir, id));
                Thread.Sleep(100);
            }
            slurm.Run("scontrol", "requeue", id); // as a preemption does
            clock.Restart();
            string result = Path.Combine(ck, $"result-{id}.json");
            while (true)
            {
                string state = slurm.Run("squeue", "-h", "-j", id, "-o", "%T").Trim();
                // Done and gone — but only once the requeued run wrote its result: between the cancel and the requeue
                // squeue can briefly show nothing.
                bool gone = state.Length == 0 || state.Contains("Invalid job id", StringComparison.Ordinal);
                if (gone && File.Exists(result))
                    break;
                if (state == "PENDING")
                    slurm.Run("scontrol", "update", $"JobId={id}", "StartTime=now"); // requeued jobs wait otherwise
                Assert.That(
                    clock.Elapsed,
                    Is.LessThan(TimeSpan.FromSeconds(180)),
                    $"job still {state}: " + Log(dir, id)
                );
                Thread.Sleep(500);
            }
            string log = Log(dir, id);
            Assert.That(log, Does.Contain("resumed from " + ck), log);
            using var j = JsonDocument.Parse(File.ReadAllText(result));
            var r = j.RootElement;
            Assert.That(r.GetProperty("status").GetString(), Is.EqualTo("completed"), log);
            // 256 samples, batch 128: 2 steps an epoch; the requeued run went on from the checkpoint's step, not from 0.
            Assert.That(r.GetProperty("steps").GetInt64(), Is.EqualTo(150 * 2));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static string Log(string dir, string id)
    {
        string f = Path.Combine(dir, $"hpcengine-{id}.out");
        return File.Exists(f) ? File.ReadAllText(f) : "(no job output yet)";
    }
}
