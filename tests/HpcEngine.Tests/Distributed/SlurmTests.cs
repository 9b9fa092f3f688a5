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
}
