using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>Hierarchical allreduce over ranks that stand for several hosts (<see cref="Ranks.RunOnHosts"/>): closed
/// forms for every dtype and op, bitwise agreement, Auto's choice, and the bytes that cross between hosts.
/// The same algorithm across real network hosts is in MultiHostTests.</summary>
public class HierarchicalTests
{
    private static readonly TcpOptions Opts = new()
    {
        Timeout = TimeSpan.FromSeconds(30),
        ChunkBytes = 4096,
        SmallMessageBytes = 256,
        ShmRingBytes = 64 * 1024,
    };

    private static readonly AllReduceOptions Hier = new() { Algorithm = AllReduceAlgorithm.Hierarchical };

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (var (hosts, perHost) in new[] { (2, 2), (2, 3), (3, 2) })
        foreach (
            var dt in new[] { DType.Float32, DType.Float64, DType.Int32, DType.Int64, DType.BFloat16, DType.Float16 }
        )
        foreach (int count in new[] { 0, 1, 7, 3001 })
            yield return new TestCaseData(hosts, perHost, dt, count).SetName(
                $"hierarchical {hosts}x{perHost} {dt.TorchName()} count={count}"
            );
    }

    [TestCaseSource(nameof(Cases))]
    public void Hierarchical_allreduce_gives_the_closed_form_result(int hosts, int perHost, DType dtype, int count)
    {
        int n = hosts * perHost;
        Ranks.RunOnHosts(
            n,
            hosts,
            pg =>
            {
                foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Max, ReduceOp.Min, ReduceOp.Avg })
                {
                    if (op == ReduceOp.Avg && !dtype.IsFloating())
                        continue;
                    var v = Enumerable.Range(0, count).Select(i => (double)(pg.Rank + 1) * (i % 5 + 1)).ToArray();
                    using var d = Tensor.FromArray(v);
                    using var x = d.To(dtype);
                    pg.AllReduce(x, Hier with { Op = op }).Wait();
                    var got = x.ToArray<double>();
                    for (int i = 0; i < count; i++)
                    {
                        double b = i % 5 + 1,
                            want = op switch
                            {
                                ReduceOp.Sum => n * (n + 1) / 2.0 * b,
                                ReduceOp.Avg => (n + 1) / 2.0 * b,
                                ReduceOp.Max => n * b,
                                _ => b,
                            };
                        Assert.That(
                            got[i],
                            Is.EqualTo(want).Within(dtype is DType.BFloat16 ? 0.02 * want : 1e-6),
                            $"{op} element {i}"
                        );
                    }
                }
            },
            Opts
        );
    }

    [Test]
    public void Every_rank_ends_bitwise_equal_and_equal_to_the_sum()
    {
        const int n = 4,
            count = 20011;
        var results = new float[n][];
        Ranks.RunOnHosts(
            n,
            2,
            pg =>
            {
                using var x = Tensor.Randn([count], DType.Float32, new Generator((ulong)pg.Rank + 1));
                pg.AllReduce(x, Hier).Wait();
                results[pg.Rank] = x.ToArray<float>();
            },
            Opts
        );
        for (int r = 1; r < n; r++)
            Assert.That(results[r], Is.EqualTo(results[0]), $"rank {r} differs from rank 0");
        var want = new double[count];
        for (int r = 0; r < n; r++)
        {
            var v = Tensor.Randn([count], DType.Float32, new Generator((ulong)r + 1)).ToArray<float>();
            for (int i = 0; i < count; i++)
                want[i] += v[i];
        }
        for (int i = 0; i < count; i += 997)
            Assert.That(results[0][i], Is.EqualTo(want[i]).Within(1e-4));
    }

    [Test]
    public void Auto_goes_hierarchical_across_hosts_above_the_small_message_size_only()
    {
        var chosen = new string[4];
        Ranks.RunOnHosts(
            4,
            2,
            pg =>
            {
                chosen[pg.Rank] =
                    $"{pg.ChosenAlgorithm(256)} {pg.ChosenAlgorithm(257)} {pg.TransportTo(pg.Rank ^ 1)} "
                    + $"{pg.TransportTo(pg.Rank ^ 2)}";
                // Sub-groups made by the first hierarchical op do not disturb the groups the user makes after it.
                using (var x = Tensor.Ones([1000]))
                    pg.AllReduce(x).Wait();
                var pair = pg.NewGroup([0, 1]);
                if (pair != null)
                {
                    using var y = Tensor.Ones([3]);
                    pair.AllReduce(y).Wait();
                    Assert.That(y.ToArray<float>(), Is.EqualTo(new[] { 2f, 2f, 2f }));
                }
            },
            Opts
        );
        Assert.That(chosen, Is.All.EqualTo("RecursiveDoubling Hierarchical shm tcp"));
    }

    [Test]
    public void One_host_stays_flat_and_an_explicit_request_says_why_it_cannot()
    {
        Ranks.Run(
            4,
            pg =>
            {
                Assert.That(pg.ChosenAlgorithm(1 << 20), Is.Not.EqualTo(AllReduceAlgorithm.Hierarchical));
                using var x = Tensor.Ones([1000]);
                var e = Assert.Throws<ArgumentException>(() => pg.AllReduce(x, Hier));
                Assert.That(e!.Message, Does.Contain("1 host(s) of 4 rank(s)"));
            },
            Opts
        );
    }

    [Test]
    public void Hosts_with_different_rank_counts_stay_flat()
    {
        // Ranks 0, 1 on one host and 2, 3 on the other: the sub-group [0, 1, 2] has hosts of 2 ranks and 1.
        Ranks.RunOnHosts(
            4,
            2,
            pg =>
            {
                var odd = (TcpProcessGroup?)pg.NewGroup([0, 1, 2]);
                if (odd == null)
                    return;
                Assert.That(odd.ChosenAlgorithm(1 << 20), Is.EqualTo(AllReduceAlgorithm.Ring));
                using var x = Tensor.Ones([1000]);
                var e = Assert.Throws<ArgumentException>(() => odd.AllReduce(x, Hier));
                Assert.That(e!.Message, Does.Contain("different numbers of ranks (2, 1)"));
                odd.AllReduce(x).Wait();
                Assert.That(x.ToArray<float>()[999], Is.EqualTo(3f));
            },
            Opts
        );
    }

    [Test]
    public void Fewer_bytes_cross_between_hosts_than_with_the_flat_ring()
    {
        // 2 hosts × 2 ranks, B bytes: the flat ring 0→1→2→3→0 sends 2(n−1)/n·B = 1.5 B over each of its two
        // cross-host links (1→2 and 3→0); hierarchical sends B/2 from every rank across (its share, a 2-rank ring).
        const int count = 1 << 16;
        long bytes = count * 4L;
        var flat = new long[4];
        var hier = new long[4];
        Ranks.RunOnHosts(
            4,
            2,
            pg =>
            {
                long Across() => Enumerable.Range(0, 4).Where(r => pg.TransportTo(r) == "tcp").Sum(pg.BytesSentTo);
                using var x = Tensor.Ones([count]);
                long before = Across();
                pg.AllReduce(x, new AllReduceOptions { Algorithm = AllReduceAlgorithm.Ring }).Wait();
                flat[pg.Rank] = Across() - before;
                before = Across();
                pg.AllReduce(x, Hier).Wait();
                hier[pg.Rank] = Across() - before;
            },
            Opts with
            {
                HeartbeatInterval = TimeSpan.FromMinutes(5),
            }
        );
        // Payload only, within the frame headers (a few percent at 4 KB chunks).
        Assert.That(flat.Sum(), Is.InRange(3 * bytes, 3 * bytes * 1.05), "flat ring: 1.5 B from each of ranks 1 and 3");
        Assert.That(hier.Sum(), Is.InRange(2 * bytes, 2 * bytes * 1.05), "hierarchical: B/2 from each rank");
        Assert.That(hier, Is.All.InRange(bytes / 2, bytes / 2 * 1.05));
    }
}
