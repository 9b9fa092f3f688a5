using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>Every collective over loopback TCP and over shared memory with rank-dependent inputs and closed-form
/// results: rank r holds x_r[i] = (r + 1)·(i mod 5 + 1), so the sum is n(n+1)/2·(i mod 5 + 1), the max
/// n·(i mod 5 + 1), and so on.</summary>
[TestFixture(LinkTransport.Tcp)]
[TestFixture(LinkTransport.Shm)]
public class CollectiveTests(LinkTransport transport)
{
    // Small chunks, so even modest sizes take the chunked, pipelined path; small rings, so shared memory wraps often.
    private readonly TcpOptions Opts = new()
    {
        Timeout = TimeSpan.FromSeconds(30),
        ChunkBytes = 4096,
        SmallMessageBytes = 256,
        Transport = transport,
        ShmRingBytes = 64 * 1024,
    };

    private static Tensor Input(int rank, int count, DType dtype)
    {
        var v = new double[count];
        for (int i = 0; i < count; i++)
            v[i] = (rank + 1) * (i % 5 + 1);
        using var d = Tensor.FromArray(v);
        return d.To(dtype).DetachFromScope();
    }

    private static double Expected(ReduceOp op, int n, int i)
    {
        double b = i % 5 + 1;
        return op switch
        {
            ReduceOp.Sum => n * (n + 1) / 2.0 * b,
            ReduceOp.Avg => (n + 1) / 2.0 * b,
            ReduceOp.Max => n * b,
            ReduceOp.Min => b,
            ReduceOp.Product => Enumerable.Range(1, n).Aggregate(1.0, (acc, r) => acc * r * b),
            _ => throw new ArgumentOutOfRangeException(nameof(op)),
        };
    }

    public static IEnumerable<TestCaseData> AllReduceCases()
    {
        foreach (int n in new[] { 1, 2, 3, 4 })
        foreach (
            var dt in new[] { DType.Float32, DType.Float64, DType.Int32, DType.Int64, DType.BFloat16, DType.Float16 }
        )
        foreach (int count in new[] { 0, 1, 7, 3001 })
            yield return new TestCaseData(n, dt, count).SetName($"allreduce n={n} {dt.TorchName()} count={count}");
    }

    [TestCaseSource(nameof(AllReduceCases))]
    public void AllReduce_gives_the_closed_form_result(int n, DType dtype, int count)
    {
        Ranks.Run(
            n,
            pg =>
            {
                foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Max, ReduceOp.Min, ReduceOp.Avg })
                {
                    if (op == ReduceOp.Avg && !dtype.IsFloating())
                        continue;
                    using var x = Input(pg.Rank, count, dtype);
                    pg.AllReduce(x, new AllReduceOptions { Op = op }).Wait();
                    var got = x.ToArray<double>();
                    for (int i = 0; i < count; i++)
                        Assert.That(
                            got[i],
                            Is.EqualTo(Expected(op, n, i))
                                .Within(dtype is DType.BFloat16 ? 0.02 * Expected(op, n, i) : 1e-6),
                            $"{op} element {i}"
                        );
                }
            },
            Opts
        );
    }

    [TestCase(AllReduceAlgorithm.Ring, 2)]
    [TestCase(AllReduceAlgorithm.Ring, 3)]
    [TestCase(AllReduceAlgorithm.Ring, 5)]
    [TestCase(AllReduceAlgorithm.Direct, 4)]
    [TestCase(AllReduceAlgorithm.RecursiveDoubling, 2)]
    [TestCase(AllReduceAlgorithm.RecursiveDoubling, 3)]
    [TestCase(AllReduceAlgorithm.RecursiveDoubling, 4)]
    [TestCase(AllReduceAlgorithm.RecursiveDoubling, 6)]
    [TestCase(AllReduceAlgorithm.RecursiveDoubling, 7)]
    public void Every_algorithm_gives_bitwise_equal_results_on_every_rank(AllReduceAlgorithm algorithm, int n)
    {
        var results = new float[n][];
        Ranks.Run(
            n,
            pg =>
            {
                // Values that round differently in different summation orders: every rank must still agree bit for bit.
                using var x = Tensor.Randn([20011], DType.Float32, new Generator((ulong)pg.Rank + 1));
                pg.AllReduce(x, new AllReduceOptions { Algorithm = algorithm }).Wait();
                results[pg.Rank] = x.ToArray<float>();
            },
            Opts
        );
        for (int r = 1; r < n; r++)
            Assert.That(results[r], Is.EqualTo(results[0]), $"rank {r} differs from rank 0");
        // And the value is the sum, to float tolerance.
        var want = new double[20011];
        for (int r = 0; r < n; r++)
        {
            var v = Tensor.Randn([20011], DType.Float32, new Generator((ulong)r + 1)).ToArray<float>();
            for (int i = 0; i < want.Length; i++)
                want[i] += v[i];
        }
        for (int i = 0; i < want.Length; i += 997)
            Assert.That(results[0][i], Is.EqualTo(want[i]).Within(1e-4));
    }

    [Test]
    public void Product_reduces_exactly()
    {
        Ranks.Run(
            3,
            pg =>
            {
                using var x = Input(pg.Rank, 11, DType.Int64);
                pg.AllReduce(x, new AllReduceOptions { Op = ReduceOp.Product }).Wait();
                var got = x.ToArray<long>();
                for (int i = 0; i < 11; i++)
                    Assert.That(got[i], Is.EqualTo((long)Expected(ReduceOp.Product, 3, i)));
            },
            Opts
        );
    }

    [TestCase(2, 0)]
    [TestCase(4, 2)]
    [TestCase(3, 1)]
    public void Broadcast_copies_the_roots_tensor(int n, int root)
    {
        Ranks.Run(
            n,
            pg =>
            {
                using var x = Input(pg.Rank, 10007, DType.Float32);
                pg.Broadcast(x, new BroadcastOptions { Root = root }).Wait();
                using var want = Input(root, 10007, DType.Float32);
                Assert.That(x.ToArray<float>(), Is.EqualTo(want.ToArray<float>()));
            },
            Opts
        );
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(4)]
    public void AllGather_and_reduce_scatter_are_exact(int n)
    {
        Ranks.Run(
            n,
            pg =>
            {
                using var mine = Input(pg.Rank, 2503, DType.Float64);
                using var all = Tensor.Zeros([n, 2503], DType.Float64);
                pg.AllGather(all, mine).Wait();
                for (int r = 0; r < n; r++)
                    using (var want = Input(r, 2503, DType.Float64))
                    using (var row = all.Select(0, r))
                        Assert.That(row.ToArray<double>(), Is.EqualTo(want.ToArray<double>()), $"block {r}");

                using var big = Input(pg.Rank, n * 1001, DType.Float32);
                using var part = Tensor.Zeros([1001]);
                pg.ReduceScatter(part, big).Wait();
                var got = part.ToArray<float>();
                for (int i = 0; i < 1001; i++)
                    Assert.That(got[i], Is.EqualTo(Expected(ReduceOp.Sum, n, pg.Rank * 1001 + i)));
            },
            Opts
        );
    }

    [Test]
    public void AllToAll_transposes_blocks()
    {
        const int n = 3,
            block = 5;
        Ranks.Run(
            n,
            pg =>
            {
                // input block j of rank r holds 100·r + j
                var v = new float[n * block];
                for (int j = 0; j < n; j++)
                for (int k = 0; k < block; k++)
                    v[j * block + k] = 100 * pg.Rank + j;
                using var input = Tensor.FromArray(v, n, block);
                using var output = Tensor.Zeros([n, block]);
                pg.AllToAll(output, input).Wait();
                var got = output.ToArray<float>();
                for (int j = 0; j < n; j++)
                for (int k = 0; k < block; k++)
                    Assert.That(got[j * block + k], Is.EqualTo(100 * j + pg.Rank));
            },
            Opts
        );
    }

    [Test]
    public void Send_and_recv_match_by_tag_in_either_order()
    {
        Ranks.Run(
            2,
            pg =>
            {
                if (pg.Rank == 0)
                {
                    using var a = Tensor.FromArray([1f, 2f, 3f]);
                    using var b = Tensor.FromArray([9f]);
                    var w1 = pg.Send(a, 1, tag: 7);
                    var w2 = pg.Send(b, 1, tag: 8);
                    w1.Wait();
                    w2.Wait();
                }
                else
                {
                    using var b = Tensor.Zeros([1]);
                    using var a = Tensor.Zeros([3]);
                    pg.Recv(b, 0, tag: 8).Wait();
                    pg.Recv(a, 0, tag: 7).Wait();
                    Assert.That(a.ToArray<float>(), Is.EqualTo(new[] { 1f, 2f, 3f }));
                    Assert.That(b.Item(), Is.EqualTo(9));
                }
                pg.Barrier().Wait();
            },
            Opts
        );
    }

    [Test]
    public void Many_collectives_in_flight_complete_independently()
    {
        Ranks.Run(
            3,
            pg =>
            {
                var xs = Enumerable.Range(0, 8).Select(k => Input(pg.Rank, 700 + 301 * k, DType.Float32)).ToArray();
                var works = xs.Select(x => pg.AllReduce(x)).ToArray();
                foreach (var w in works)
                    w.Wait();
                for (int k = 0; k < xs.Length; k++)
                {
                    var got = xs[k].ToArray<float>();
                    for (int i = 0; i < got.Length; i += 17)
                        Assert.That(got[i], Is.EqualTo(Expected(ReduceOp.Sum, 3, i)));
                    xs[k].Dispose();
                }
            },
            Opts
        );
    }

    [Test]
    public void Sub_groups_reduce_among_their_members_only()
    {
        Ranks.Run(
            4,
            pg =>
            {
                var odd = pg.NewGroup([1, 3]);
                var even = pg.NewGroup([0, 2]);
                var mine = pg.Rank % 2 == 1 ? odd : even;
                Assert.That(pg.Rank % 2 == 1 ? even : odd, Is.Null, "non-members get null");
                Assert.That(mine!.Size, Is.EqualTo(2));
                Assert.That(mine.Rank, Is.EqualTo(pg.Rank / 2));
                using var x = Tensor.FromArray([(float)pg.Rank]);
                mine.AllReduce(x).Wait();
                Assert.That(x.Item(), Is.EqualTo(pg.Rank % 2 == 1 ? 1 + 3 : 0 + 2));
                // the parent group still works afterwards
                using var y = Tensor.FromArray([1f]);
                pg.AllReduce(y).Wait();
                Assert.That(y.Item(), Is.EqualTo(4));
                mine.Dispose();
            },
            Opts
        );
    }

    [Test]
    public void Bad_arguments_are_clear_errors()
    {
        Ranks.Run(
            2,
            pg =>
            {
                using var t = Tensor.Zeros([4, 4]);
                using var tt = t.T();
                Assert.Throws<ArgumentException>(() => pg.AllReduce(tt));
                Assert.Throws<ArgumentOutOfRangeException>(() => pg.Broadcast(t, new BroadcastOptions { Root = 2 }));
                Assert.Throws<ShapeMismatchException>(() => pg.AllGather(Tensor.Zeros([3]), Tensor.Zeros([2])));
                Assert.Throws<NotSupportedException>(() => pg.AllReduce(Tensor.Zeros([2], DType.Bool)));
                Assert.Throws<ArgumentOutOfRangeException>(() => pg.Send(t, pg.Rank));
            },
            Opts
        );
    }
}
