using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>Hierarchical broadcast, allgather and reduce-scatter over ranks that stand for several hosts: closed forms
/// for every root / dtype / op, and the bytes that cross between hosts against the flat algorithms.</summary>
public class HierarchicalOpsTests
{
    private static readonly TcpOptions Opts = new()
    {
        Timeout = TimeSpan.FromSeconds(30),
        ChunkBytes = 4096,
        SmallMessageBytes = 256,
        ShmRingBytes = 64 * 1024,
        HierarchicalAll = true,
    };

    public static IEnumerable<TestCaseData> Layouts()
    {
        foreach (var (hosts, perHost) in new[] { (2, 2), (2, 3), (3, 2) })
        foreach (var dt in new[] { DType.Float32, DType.Int64, DType.BFloat16 })
            yield return new TestCaseData(hosts, perHost, dt).SetName(
                $"hierarchical ops {hosts}x{perHost} {dt.TorchName()}"
            );
    }

    [TestCaseSource(nameof(Layouts))]
    public void Broadcast_allgather_and_reduce_scatter_give_the_closed_form_results(int hosts, int perHost, DType dtype)
    {
        int n = hosts * perHost;
        const int block = 9001; // above the small-message size (Auto goes hierarchical), and several pieces with a short last one
        Ranks.RunOnHosts(
            n,
            hosts,
            pg =>
            {
                for (int root = 0; root < n; root++)
                {
                    using var d = Tensor.FromArray(
                        Enumerable.Range(0, 20000).Select(i => (double)(pg.Rank == root ? i % 50 + root : -1)).ToArray()
                    );
                    using var x = d.To(dtype);
                    pg.Broadcast(x, new BroadcastOptions { Root = root }).Wait();
                    Assert.That(
                        x.ToArray<double>(),
                        Is.EqualTo(Enumerable.Range(0, 20000).Select(i => (double)(i % 50 + root))),
                        $"broadcast from {root}"
                    );
                }
                using (
                    var input = Tensor
                        .FromArray(Enumerable.Range(0, block).Select(i => (double)(pg.Rank * 10 + i % 7)).ToArray())
                        .To(dtype)
                )
                using (var output = Tensor.Zeros([n * block], dtype))
                {
                    pg.AllGather(output, input).Wait();
                    var got = output.ToArray<double>();
                    for (int r = 0; r < n; r++)
                    for (int i = 0; i < block; i++)
                        Assert.That(
                            got[r * block + i],
                            Is.EqualTo(r * 10 + i % 7),
                            $"allgather block {r}, element {i}"
                        );
                }
                foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Max, ReduceOp.Avg })
                {
                    if (op == ReduceOp.Avg && !dtype.IsFloating())
                        continue;
                    // Element j of block b on rank r is (r + 1)(b + 1) + j % 3.
                    var v = Enumerable
                        .Range(0, n * block)
                        .Select(k => (double)((pg.Rank + 1) * (k / block + 1) + k % block % 3))
                        .ToArray();
                    using var input = Tensor.FromArray(v).To(dtype);
                    using var output = Tensor.Zeros([block], dtype);
                    pg.ReduceScatter(output, input, new ReduceScatterOptions { Op = op }).Wait();
                    var got = output.ToArray<double>();
                    double b = pg.Rank + 1;
                    for (int j = 0; j < block; j++)
                    {
                        double want = op switch
                        {
                            ReduceOp.Sum => n * (n + 1) / 2.0 * b + n * (j % 3),
                            ReduceOp.Avg => (n + 1) / 2.0 * b + j % 3,
                            _ => n * b + j % 3,
                        };
                        Assert.That(
                            got[j],
                            Is.EqualTo(want).Within(dtype == DType.BFloat16 ? 0.02 * want : 1e-9),
                            $"reduce_scatter {op} element {j}"
                        );
                    }
                }
            },
            Opts
        );
    }

    [Test]
    public void Concurrent_hierarchical_ops_of_different_sizes_all_complete_with_the_right_data()
    {
        // As DDP starts them: every broadcast in flight at once, of sizes whose pieces finish in different orders.
        int[] sizes = [200_000, 1000, 40_000, 120_000, 70, 9_000];
        Ranks.RunOnHosts(
            4,
            2,
            pg =>
            {
                var tensors = sizes
                    .Select((n, i) => Tensor.Full([n], pg.Rank == 0 ? i + 1 : -1, DType.Float32))
                    .ToArray();
                var works = tensors.Select(t => pg.Broadcast(t)).ToArray();
                foreach (var w in works)
                    w.Wait();
                for (int i = 0; i < sizes.Length; i++)
                    Assert.That(
                        tensors[i].ToArray<float>(),
                        Is.All.EqualTo(i + 1f),
                        $"broadcast {i} on rank {pg.Rank}"
                    );
                foreach (var t in tensors)
                    t.Dispose();
            },
            Opts with
            {
                ChunkBytes = 4096,
            }
        );
    }

    [Test]
    public void Allgather_and_reduce_scatter_send_a_third_fewer_bytes_between_hosts_than_the_flat_rings()
    {
        // 2 hosts × 2 ranks, blocks of B bytes. Flat rings 0→1→2→3→0: ranks 1 and 3 each send 3 blocks over their
        // cross-host link (6 B). Hierarchical: each rank sends one block across (its pair's 2-rank ring): 4 B.
        const int count = 1 << 14;
        long b = count * 4L;
        var flat = new long[2];
        var hier = new long[2];
        void Measure(TcpOptions options, long[] into) =>
            Ranks.RunOnHosts(
                4,
                2,
                pg =>
                {
                    long Across() => Enumerable.Range(0, 4).Where(r => pg.TransportTo(r) == "tcp").Sum(pg.BytesSentTo);
                    using var block = Tensor.Ones([count]);
                    using var all = Tensor.Ones([4 * count]);
                    long before = Across();
                    pg.AllGather(all, block).Wait();
                    Interlocked.Add(ref into[0], Across() - before);
                    before = Across();
                    pg.ReduceScatter(block, all).Wait();
                    Interlocked.Add(ref into[1], Across() - before);
                    Assert.That(block.ToArray<float>()[count - 1], Is.EqualTo(4f));
                },
                options
            );
        Measure(Opts with { HierarchicalAll = false, HeartbeatInterval = TimeSpan.FromMinutes(5) }, flat);
        Measure(Opts with { HeartbeatInterval = TimeSpan.FromMinutes(5) }, hier);
        // Payload only, within the frame headers (a few percent at 4 KB chunks).
        Assert.That(flat, Is.All.InRange(6 * b, 6 * b * 1.05), "flat rings: 3 blocks from each of ranks 1 and 3");
        Assert.That(hier, Is.All.InRange(4 * b, 4 * b * 1.05), "hierarchical: one block from each rank");
    }
}
