using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace HpcEngine.Tests.Distributed;

/// <summary>Jobs across real network hosts (namespaces of <see cref="NetworkHosts"/>, one launcher per host, as on a
/// cluster): training gives the one-host result, collectives give their closed forms, a partition fails every rank
/// naming the unreachable peer.</summary>
[TestFixture, Category("MultiHost"), NonParallelizable]
public class MultiHostTests
{
    private const int StorePort = 29400; // inside the namespaces: no other listener can hold it

    private static string S(int v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>Starts one launcher per host (node i on host i) running `hpcengine ARGS`.</summary>
    private static List<TestSupport.CliProcess> LaunchOnHosts(
        NetworkHosts hosts,
        int perHost,
        Func<int, string[]> args,
        params string[] launchFlags
    ) => LaunchOnHosts(hosts, perHost, args, null, launchFlags);

    private static List<TestSupport.CliProcess> LaunchOnHosts(
        NetworkHosts hosts,
        int perHost,
        Func<int, string[]> args,
        Dictionary<string, string>? env,
        params string[] launchFlags
    ) =>
        Enumerable
            .Range(0, hosts.Count)
            .Select(i =>
                hosts.Start(
                    i,
                    [
                        "launch",
                        "--nnodes",
                        S(hosts.Count),
                        "--node-rank",
                        S(i),
                        "--nproc-per-node",
                        S(perHost),
                        "--master-addr",
                        NetworkHosts.Address(0),
                        "--master-port",
                        S(StorePort),
                        .. launchFlags,
                        "--",
                        "hpcengine",
                        .. args(i),
                    ],
                    env
                )
            )
            .ToList();

    private static void WaitAll(List<TestSupport.CliProcess> nodes, int seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        foreach (var (n, i) in nodes.Select((n, i) => (n, i)))
        {
            var left = deadline - DateTime.UtcNow;
            if (!n.WaitForExit(left > TimeSpan.Zero ? left : TimeSpan.Zero))
                Assert.Fail(
                    $"node {i} did not finish within {seconds}s:\n{string.Join("\n---\n", nodes.Select(x => x.Stdout + x.Stderr))}"
                );
        }
    }

    private static string[] TrainArgs(string data, string json) =>
        [
            "train",
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--data",
            data,
            "--json",
            json,
            "--threads",
            "1",
            "--seed",
            "3",
        ];

    [TestCase(1, "1")]
    [TestCase(2, "1")]
    [TestCase(2, "all")]
    public void Two_hosts_train_to_the_result_of_one_host_with_as_many_workers(int perHost, string hierarchical)
    {
        // With HPCENGINE_HIERARCHICAL=all, DDP's first broadcasts (all in flight at once) go hierarchical: their
        // sub-ops must be numbered alike on every rank however their phases finish.
        var env = new Dictionary<string, string> { ["HPCENGINE_HIERARCHICAL"] = hierarchical };
        using var hosts = NetworkHosts.Create(2);
        string dir = TestSupport.TempDir("hpc-mh-");
        try
        {
            TestSupport.WriteTinyFashionMnist(dir, 512, 128);
            string jsonHosts = Path.Combine(dir, "hosts.json"),
                jsonOne = Path.Combine(dir, "one.json");
            // A slower network changes when bytes arrive, never what the ranks compute.
            if (perHost == 1)
                for (int i = 0; i < hosts.Count; i++)
                    hosts.Shape(i, "200mbit");
            var nodes = LaunchOnHosts(
                hosts,
                perHost,
                i => TrainArgs(dir, i == 0 ? jsonHosts : Path.Combine(dir, $"unused{i}.json")),
                env
            );
            WaitAll(nodes, 240);
            for (int i = 0; i < nodes.Count; i++)
                Assert.That(nodes[i].Process.ExitCode, Is.Zero, $"node {i}: {nodes[i].Stdout}{nodes[i].Stderr}");
            Assert.That(nodes[0].Stdout, Does.Contain($"× {2 * perHost} ranks"));

            var one = TestSupport.RunCli(
                ["launch", "--nproc-per-node", S(2 * perHost), "--", "hpcengine", .. TrainArgs(dir, jsonOne)],
                timeoutSeconds: 240
            );
            Assert.That(one.Exit, Is.Zero, one.Stdout + one.Stderr);
            using var a = JsonDocument.Parse(File.ReadAllText(jsonHosts));
            using var b = JsonDocument.Parse(File.ReadAllText(jsonOne));
            var la = a.RootElement.GetProperty("step_losses").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            var lb = b.RootElement.GetProperty("step_losses").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            Assert.That(la, Has.Length.EqualTo(512 / (32 * 2 * perHost)));
            Assert.That(la, Is.EqualTo(lb), "the same ranks on two hosts compute bitwise the same steps as on one");
            Assert.That(
                a.RootElement.GetProperty("final_test_accuracy").GetDouble(),
                Is.EqualTo(b.RootElement.GetProperty("final_test_accuracy").GetDouble())
            );
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void A_master_named_by_a_host_name_that_is_loopback_on_node_0_still_works()
    {
        // Debian and Ubuntu map a host's own name to 127.0.1.1: on node 0 "node0" is loopback, on node 1 it is
        // node 0's address. A store bound to 127.0.1.1, or a rank advertising 127.0.0.1, would be unreachable.
        using var hosts = NetworkHosts.Create(2);
        hosts.SetHosts(0, "127.0.0.1 localhost\n127.0.1.1 node0\n");
        hosts.SetHosts(1, $"127.0.0.1 localhost\n127.0.1.1 node1\n{NetworkHosts.Address(0)} node0\n");
        string json = Path.Combine(Path.GetTempPath(), $"hpc-mh-{Guid.NewGuid():N}.json");
        try
        {
            var nodes = Enumerable
                .Range(0, 2)
                .Select(i =>
                    hosts.Start(
                        i,
                        [
                            "launch",
                            "--nnodes",
                            "2",
                            "--node-rank",
                            S(i),
                            "--nproc-per-node",
                            "1",
                            "--rdzv-endpoint",
                            $"node0:{S(StorePort)}",
                            "--",
                            "hpcengine",
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
                            "--warmup",
                            "1",
                            "--check",
                            "--json",
                            json,
                        ]
                    )
                )
                .ToList();
            WaitAll(nodes, 120);
            for (int i = 0; i < nodes.Count; i++)
                Assert.That(nodes[i].Process.ExitCode, Is.Zero, $"node {i}: {nodes[i].Stdout}{nodes[i].Stderr}");
            using var j = JsonDocument.Parse(File.ReadAllText(json));
            Assert.That(
                j.RootElement.GetProperty("results").EnumerateArray().All(r => r.GetProperty("wrong").GetInt64() == 0),
                Is.True
            );
        }
        finally
        {
            File.Delete(json);
        }
    }

    [TestCase("allreduce")]
    [TestCase("allgather")]
    [TestCase("reducescatter")]
    [TestCase("broadcast")]
    [TestCase("reduce")]
    [TestCase("alltoall")]
    [TestCase("sendrecv")]
    public void Collectives_across_hosts_give_their_closed_forms(string op)
    {
        using var hosts = NetworkHosts.Create(2);
        string json = Path.Combine(Path.GetTempPath(), $"hpc-mh-{Guid.NewGuid():N}.json");
        try
        {
            // 2 hosts × 2 ranks: every algorithm mixes same-host and cross-host links.
            // HPCENGINE_HIERARCHICAL=all: broadcast, allgather and reduce-scatter go hierarchical above 64 KB too.
            var all = new Dictionary<string, string> { ["HPCENGINE_HIERARCHICAL"] = "all" };
            var nodes = LaunchOnHosts(
                hosts,
                2,
                _ =>
                    [
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
                all
            );
            WaitAll(nodes, 180);
            for (int i = 0; i < nodes.Count; i++)
                Assert.That(nodes[i].Process.ExitCode, Is.Zero, $"node {i}: {nodes[i].Stdout}{nodes[i].Stderr}");
            using var j = JsonDocument.Parse(File.ReadAllText(json));
            Assert.That(j.RootElement.GetProperty("world_size").GetInt32(), Is.EqualTo(4));
            // A mixed group: rank 0's host-mate over shared memory, the other host's ranks over TCP.
            Assert.That(j.RootElement.GetProperty("transport").GetString(), Is.EqualTo("mixed"));
            Assert.That(
                j.RootElement.GetProperty("links").EnumerateArray().Select(l => l.GetString()),
                Is.EqualTo(new[] { "self", "shm", "tcp", "tcp" })
            );
            var results = j.RootElement.GetProperty("results").EnumerateArray().ToArray();
            Assert.That(results, Has.Length.EqualTo(3));
            foreach (var r in results)
                Assert.That(r.GetProperty("wrong").GetInt64(), Is.Zero, r.ToString());
            // Above the small-message size, over 2 hosts × 2 ranks, these go hierarchical.
            string? flat = op switch
            {
                "allreduce" => "rdoubling",
                "allgather" or "reducescatter" => "ring",
                "broadcast" => "chain",
                _ => null,
            };
            if (flat != null)
                Assert.That(
                    results.Select(r => r.GetProperty("algorithm").GetString()),
                    Is.EqualTo(new[] { flat, flat, "hierarchical" })
                );
        }
        finally
        {
            File.Delete(json);
        }
    }

    [Test]
    public void Shared_memory_demanded_across_hosts_is_a_clear_error()
    {
        using var hosts = NetworkHosts.Create(2);
        var env = new Dictionary<string, string> { ["HPCENGINE_TRANSPORT"] = "shm" };
        var nodes = Enumerable
            .Range(0, 2)
            .Select(i =>
                hosts.Start(
                    i,
                    [
                        "launch",
                        "--nnodes",
                        "2",
                        "--node-rank",
                        S(i),
                        "--nproc-per-node",
                        "1",
                        "--master-addr",
                        NetworkHosts.Address(0),
                        "--master-port",
                        S(StorePort),
                        "--",
                        "hpcengine",
                        "bench",
                        "collectives",
                        "--min-bytes",
                        "1024",
                        "--max-bytes",
                        "1024",
                    ],
                    env
                )
            )
            .ToList();
        WaitAll(nodes, 120);
        for (int i = 0; i < 2; i++)
        {
            Assert.That(nodes[i].Process.ExitCode, Is.Not.Zero, $"node {i}");
            Assert.That(
                nodes[i].Stderr,
                Does.Contain("shared memory works only inside one host"),
                $"node {i}: {nodes[i].Stderr}"
            );
        }
    }

    [Test]
    public void A_partitioned_host_fails_every_rank_within_the_timeout_naming_it()
    {
        using var hosts = NetworkHosts.Create(3);
        var nodes = LaunchOnHosts(
            hosts,
            1,
            _ =>
                [
                    "bench",
                    "collectives",
                    "--op",
                    "allreduce",
                    "--min-bytes",
                    "4194304",
                    "--max-bytes",
                    "4194304",
                    "--iters",
                    "100000",
                    "--warmup",
                    "0",
                ],
            "--timeout",
            "4",
            "--grace-period",
            "2"
        );
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (!nodes[0].Stdout.Contains("[0] # allreduce", StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline || nodes.Any(n => n.Process.HasExited))
                Assert.Fail($"the job did not start: {string.Join("\n---\n", nodes.Select(n => n.Stderr))}");
            Thread.Sleep(50);
        }
        Thread.Sleep(1000);
        var cut = Stopwatch.StartNew();
        hosts.SetLink(2, up: false);
        WaitAll(nodes, 60);
        Assert.That(cut.Elapsed.TotalSeconds, Is.LessThan(30), "every rank failed at its timeout, not later");
        for (int i = 0; i < 3; i++)
        {
            Assert.That(nodes[i].Process.ExitCode, Is.Not.Zero, $"node {i}");
            Assert.That(nodes[i].Stderr, Does.Contain("allreduce #"), $"node {i}: {nodes[i].Stderr}");
        }
        foreach (int i in new[] { 0, 1 })
            Assert.That(
                nodes[i].Stderr,
                Does.Contain("rank 2"),
                $"node {i} names the unreachable rank: {nodes[i].Stderr}"
            );
    }
}
