using System.Globalization;
using System.Text.Json;

namespace HpcEngine.Tests.Distributed;

/// <summary>Elastic training across real network hosts (namespaces of <see cref="NetworkHosts"/>, one elastic launcher
/// per host, node 0's hosting the store): a host whose workers all die, and a host cut off by a partition, are both
/// dropped, and the other host's workers finish the run.</summary>
[TestFixture, Category("MultiHost"), NonParallelizable]
public class MultiHostElasticTests
{
    private const int StorePort = 29400;

    private static string S(int v) => v.ToString(CultureInfo.InvariantCulture);

    private static List<TestSupport.CliProcess> Launch(
        NetworkHosts hosts,
        string dir,
        string json,
        int epochs,
        string? faults
    ) =>
        Enumerable
            .Range(0, hosts.Count)
            .Select(i => Node(hosts, i, dir, json, epochs, faults, S(hosts.Count)))
            .ToList();

    /// <summary>Starts node <paramref name="i"/>'s elastic launcher of a job of <paramref name="nnodes"/> nodes.</summary>
    private static TestSupport.CliProcess Node(
        NetworkHosts hosts,
        int i,
        string dir,
        string json,
        int epochs,
        string? faults,
        string nnodes
    ) =>
        hosts.Start(
            i,
            [
                "launch",
                "--elastic",
                "--nnodes",
                nnodes,
                "--node-rank",
                S(i),
                "--nproc-per-node",
                "2",
                "--master-addr",
                NetworkHosts.Address(0),
                "--master-port",
                S(StorePort),
                "--",
                "hpcengine",
                "train",
                "--model",
                "mlp",
                "--epochs",
                S(epochs),
                "--batch-size",
                "32",
                "--data",
                dir,
                "--threads",
                "1",
                "--json",
                i == 0 ? json : Path.Combine(dir, $"unused{i}.json"),
                .. (faults != null ? new[] { "--fault-plan", faults } : []),
            ]
        );

    private static void AssertHostLost(JsonElement j, int expectedSamples)
    {
        Assert.That(j.GetProperty("status").GetString(), Is.EqualTo("completed"));
        var lost = j.GetProperty("membership").EnumerateArray().Select(e => e.GetProperty("rank").GetInt32()).Order();
        Assert.That(lost, Is.EqualTo(new[] { 2, 3 }), "both ranks of host 1");
        Assert.That(j.GetProperty("workers").GetInt32(), Is.EqualTo(2));
        Assert.That(j.GetProperty("replica_hash_agree").GetBoolean(), Is.True);
        Assert.That(j.GetProperty("samples_seen").GetInt64(), Is.EqualTo(expectedSamples));
        Assert.That(j.GetProperty("samples_expected").GetInt64(), Is.EqualTo(expectedSamples));
    }

    [Test]
    public void When_every_worker_of_a_host_dies_the_other_host_finishes_the_run()
    {
        using var hosts = NetworkHosts.Create(2);
        string dir = TestSupport.TempDir("hpc-mhe-");
        try
        {
            TestSupport.WriteTinyFashionMnist(dir, 512, 128);
            string json = Path.Combine(dir, "r.json");
            var nodes = Launch(hosts, dir, json, 3, "kill:rank=2,step=2;kill:rank=3,step=2");
            Assert.That(nodes[0].WaitForExit(TimeSpan.FromSeconds(120)), Is.True, nodes[0].Stdout + nodes[0].Stderr);
            Assert.That(nodes[1].WaitForExit(TimeSpan.FromSeconds(30)), Is.True);
            Assert.That(nodes[0].Process.ExitCode, Is.Zero, nodes[0].Stdout + nodes[0].Stderr);
            Assert.That(nodes[1].Process.ExitCode, Is.EqualTo(137), "host 1's launcher: none of its workers completed");
            using var j = JsonDocument.Parse(File.ReadAllText(json));
            AssertHostLost(j.RootElement, 3 * 512);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void A_host_that_comes_later_joins_a_running_job_with_nnodes_min_max()
    {
        // --nnodes 1:2: host 0 starts the job alone (2 workers); host 1, started once training is under way, joins it.
        using var hosts = NetworkHosts.Create(2);
        string dir = TestSupport.TempDir("hpc-mhe-");
        try
        {
            TestSupport.WriteTinyFashionMnist(dir, 512, 128);
            string json = Path.Combine(dir, "r.json");
            var first = Node(hosts, 0, dir, json, 40, null, "1:2");
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (!first.Stdout.Contains("epoch 1/", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
                Thread.Sleep(20);
            Assert.That(first.Stdout, Does.Contain("epoch 1/"), first.Stdout + first.Stderr);
            var later = Node(hosts, 1, dir, json, 40, null, "1:2");
            Assert.That(first.WaitForExit(TimeSpan.FromSeconds(150)), Is.True, first.Stdout + first.Stderr);
            Assert.That(later.WaitForExit(TimeSpan.FromSeconds(30)), Is.True, later.Stdout + later.Stderr);
            Assert.That(first.Process.ExitCode, Is.Zero, first.Stdout + first.Stderr);
            Assert.That(later.Process.ExitCode, Is.Zero, later.Stdout + later.Stderr);
            using var j = JsonDocument.Parse(File.ReadAllText(json));
            var joined = j
                .RootElement.GetProperty("membership")
                .EnumerateArray()
                .Where(e => e.GetProperty("kind").GetString() == "joined")
                .Select(e => e.GetProperty("rank").GetInt32())
                .Order();
            Assert.That(joined, Is.EqualTo(new[] { 2, 3 }), first.Stdout);
            Assert.That(j.RootElement.GetProperty("workers").GetInt32(), Is.EqualTo(4));
            Assert.That(j.RootElement.GetProperty("replica_hash_agree").GetBoolean(), Is.True);
            long padding =
                j.RootElement.GetProperty("samples_seen").GetInt64()
                - j.RootElement.GetProperty("samples_expected").GetInt64();
            Assert.That(padding, Is.InRange(0, 3), "the epoch's rest dealt over 4 ranks pads at most 3 samples");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void A_partitioned_host_is_dropped_after_the_peer_timeout_and_the_other_host_goes_on()
    {
        using var hosts = NetworkHosts.Create(2);
        string dir = TestSupport.TempDir("hpc-mhe-");
        try
        {
            TestSupport.WriteTinyFashionMnist(dir, 512, 128);
            string json = Path.Combine(dir, "r.json");
            var nodes = Launch(hosts, dir, json, 12, null);
            // Cut host 1 off once training is under way (rank 0 has finished an epoch).
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (!nodes[0].Stdout.Contains("epoch 2/", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
                Thread.Sleep(20);
            Assert.That(nodes[0].Stdout, Does.Contain("epoch 2/"), nodes[0].Stdout + nodes[0].Stderr);
            hosts.SetLink(1, up: false);
            Assert.That(nodes[0].WaitForExit(TimeSpan.FromSeconds(120)), Is.True, nodes[0].Stdout + nodes[0].Stderr);
            Assert.That(nodes[0].Process.ExitCode, Is.Zero, nodes[0].Stdout + nodes[0].Stderr);
            Assert.That(nodes[0].Stdout, Does.Contain("generation 1 has 2 rank(s)"));
            using var j = JsonDocument.Parse(File.ReadAllText(json));
            AssertHostLost(j.RootElement, 12 * 512);
            // Host 1's workers cannot reach the store any more; the test bed's disposal stops them.
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
