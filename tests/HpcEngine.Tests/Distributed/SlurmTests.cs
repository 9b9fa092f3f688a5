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
}
