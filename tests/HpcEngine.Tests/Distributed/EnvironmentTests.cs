using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

[TestFixture]
public class EnvironmentTests
{
    private static DistributedEnvironment Resolve(params (string, string)[] vars)
    {
        var d = vars.ToDictionary(v => v.Item1, v => v.Item2);
        return DistributedEnvironment.Resolve(k => d.GetValueOrDefault(k));
    }

    [Test]
    public void Torchrun_variables_come_first()
    {
        var e = Resolve(
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("MASTER_ADDR", "10.1.2.3"),
            ("MASTER_PORT", "1234"),
            ("OMPI_COMM_WORLD_RANK", "0")
        );
        Assert.That(e, Is.EqualTo(new DistributedEnvironment(3, 8, 1, 2, "10.1.2.3", 1234, "torchrun")));
    }

    [Test]
    public void Incomplete_torchrun_environment_lists_what_is_missing()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => Resolve(("RANK", "0"), ("MASTER_PORT", "1")));
        Assert.That(ex!.Message, Does.Contain("WORLD_SIZE").And.Contain("MASTER_ADDR").And.Not.Contain("MASTER_PORT,"));
    }

    [Test]
    public void OpenMpi_slurm_and_pmi_are_recognised()
    {
        var mpi = Resolve(
            ("OMPI_COMM_WORLD_RANK", "2"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "2")
        );
        Assert.That(
            (mpi.Rank, mpi.WorldSize, mpi.LocalRank, mpi.MasterPort, mpi.Source),
            Is.EqualTo((2, 4, 2, DistributedEnvironment.DefaultPort, "openmpi"))
        );
        var slurm = Resolve(
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_JOB_NODELIST", "gpu[07-09,12],cpu3"),
            ("SLURM_STEP_ID", "0")
        );
        Assert.That((slurm.Rank, slurm.WorldSize, slurm.LocalRank, slurm.MasterAddr), Is.EqualTo((5, 16, 1, "gpu07")));
        var slurmMaster = Resolve(
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_JOB_NODELIST", "a1"),
            ("MASTER_ADDR", "head"),
            ("SLURM_STEP_ID", "0")
        );
        Assert.That(slurmMaster.MasterAddr, Is.EqualTo("head"));
        // A step of 2 tasks inside an allocation of 4 (srun -n 2 in an sbatch -n 4 script): the step is the job.
        var step = Resolve(
            ("SLURM_PROCID", "1"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("SLURM_STEP_ID", "3"),
            ("SLURM_JOB_ID", "41"),
            ("SLURM_STEP_NODELIST", "n[2-3]"),
            ("SLURM_JOB_NODELIST", "n[1-4]"),
            ("SLURM_STEP_TASKS_PER_NODE", "1(x2)")
        );
        Assert.That(
            (step.WorldSize, step.LocalWorldSize, step.MasterAddr, step.JobId),
            Is.EqualTo((2, 1, "n2", "slurm-41.3"))
        );
        Assert.That(step.MasterPort, Is.EqualTo(20000 + (41 * 31 + 3) % 20000), "a port of its own per job step");
        var batch = Assert.Throws<InvalidOperationException>(() =>
            Resolve(("SLURM_PROCID", "0"), ("SLURM_NTASKS", "4"), ("SLURM_JOB_NODELIST", "n1"))
        );
        Assert.That(batch!.Message, Does.Contain("srun"));
        var pmi = Resolve(("PMI_RANK", "1"), ("PMI_SIZE", "3"));
        Assert.That((pmi.Rank, pmi.WorldSize, pmi.Source), Is.EqualTo((1, 3, "pmi")));
        Assert.Throws<InvalidOperationException>(() => Resolve(("SLURM_PROCID", "0")));
        Assert.Throws<InvalidOperationException>(() => Resolve(("PMI_RANK", "4"), ("PMI_SIZE", "4")));
        Assert.Throws<InvalidOperationException>(() => Resolve());
    }

    [TestCase(true, "WORLD_SIZE=2")]
    [TestCase(true, "OMPI_COMM_WORLD_SIZE=2")]
    [TestCase(true, "SLURM_STEP_ID=0", "SLURM_PROCID=0", "SLURM_NTASKS=2", "SLURM_STEP_NUM_TASKS=2")]
    [TestCase(false, "SLURM_STEP_ID=0", "SLURM_PROCID=0", "SLURM_NTASKS=1", "SLURM_STEP_NUM_TASKS=1")]
    [TestCase(false, "SLURM_PROCID=0", "SLURM_NTASKS=4")] // an sbatch script: one process in an allocation of 4
    [TestCase(true, "PMI_RANK=0", "PMI_SIZE=3")]
    [TestCase(false, "PMI_RANK=0", "PMI_SIZE=1")]
    [TestCase(false)]
    public void A_job_of_several_ranks_is_detected_under_every_launcher(bool expected, params string[] vars)
    {
        var env = vars.Select(v => v.Split('=')).ToDictionary(p => p[0], p => p[1]);
        Assert.That(DistributedEnvironment.IsPresent(k => env.GetValueOrDefault(k)), Is.EqualTo(expected));
    }

    [TestCase("node1", "node1")]
    [TestCase("node[3-5]", "node3")]
    [TestCase("rack1-n[001-004,010],x", "rack1-n001")]
    public void First_host_of_a_slurm_node_list(string list, string first) =>
        Assert.That(DistributedEnvironment.FirstHost(list), Is.EqualTo(first));

    [Test]
    public void Network_emulation_parses_rates_and_latencies()
    {
        var e = NetworkEmulation.Parse("bandwidth=1gbit,latency=2ms");
        Assert.That(e.BytesPerSecond, Is.EqualTo(125e6));
        Assert.That(e.Latency, Is.EqualTo(TimeSpan.FromMilliseconds(2)));
        Assert.That(NetworkEmulation.Parse("bandwidth=100mbit").BytesPerSecond, Is.EqualTo(12.5e6));
        Assert.That(NetworkEmulation.Parse("latency=500us").Latency, Is.EqualTo(TimeSpan.FromMicroseconds(500)));
        Assert.Throws<FormatException>(() => NetworkEmulation.Parse("bandwidth=fast"));
        Assert.Throws<FormatException>(() => NetworkEmulation.Parse("jitter=1ms"));
    }

    [Test]
    public void Emulated_latency_and_bandwidth_slow_a_collective_measurably()
    {
        // 2 ranks, a 1 MB allreduce: ring sends 2·(n−1)/n·1 MB = 1 MB per rank; at 50 MB/s that is >= 20 ms.
        double fast = 0,
            slow = 0;
        Ranks.Run(2, pg =>
        {
            using var x = Tensor.Ones([1 << 18]);
            var sw = System.Diagnostics.Stopwatch.StartNew();
            pg.AllReduce(x).Wait();
            if (pg.Rank == 0)
                fast = sw.Elapsed.TotalMilliseconds;
        });
        Ranks.Run(
            2,
            pg =>
            {
                using var x = Tensor.Ones([1 << 18]);
                var sw = System.Diagnostics.Stopwatch.StartNew();
                pg.AllReduce(x).Wait();
                if (pg.Rank == 0)
                    slow = sw.Elapsed.TotalMilliseconds;
                Assert.That(x.ToArray<float>()[123], Is.EqualTo(2));
            },
            new TcpOptions
            {
                Emulation = NetworkEmulation.Parse("bandwidth=50MB,latency=5ms"),
                Timeout = TimeSpan.FromSeconds(30),
            }
        );
        Assert.That(slow, Is.GreaterThan(20), $"emulated run took {slow:F1} ms (unemulated {fast:F1} ms)");
    }
}
