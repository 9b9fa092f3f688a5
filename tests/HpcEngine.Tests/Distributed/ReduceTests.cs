using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>Reduce to a root: closed-form results at the root (rank r holds (r + 1)·(i mod 5 + 1)), both algorithms,
/// every root, and the traffic a real reduce saves against an allreduce.</summary>
[TestFixture]
public class ReduceTests
{
    private static readonly TcpOptions Opts = new()
    {
        Timeout = TimeSpan.FromSeconds(30),
        ChunkBytes = 4096,
        SmallMessageBytes = 256,
    };

    public static IEnumerable<TestCaseData> Cases()
    {
        foreach (int n in new[] { 1, 2, 3, 4 })
        foreach (int count in new[] { 0, 1, 7, 3001 })
        foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Avg, ReduceOp.Max })
            yield return new TestCaseData(n, count, op, n - 1).SetName($"reduce {op} n={n} count={count} root={n - 1}");
        yield return new TestCaseData(3, 3001, ReduceOp.Sum, 1).SetName("reduce Sum n=3 count=3001 root=1");
        yield return new TestCaseData(4, 5000, ReduceOp.Sum, 0).SetName("reduce Sum n=4 count=5000 root=0");
    }

    [TestCaseSource(nameof(Cases))]
    public void The_root_gets_the_closed_form_reduction(int n, int count, ReduceOp op, int root)
    {
        var got = new double[n][];
        Ranks.Run(
            n,
            pg =>
            {
                var v = Enumerable.Range(0, count).Select(i => (float)((pg.Rank + 1) * (i % 5 + 1))).ToArray();
                using var t = Tensor.FromArray(v);
                pg.Reduce(t, new ReduceOptions { Op = op, Root = root }).Wait();
                got[pg.Rank] = t.ToArray<float>().Select(x => (double)x).ToArray();
            },
            Opts
        );
        for (int i = 0; i < count; i++)
        {
            double b = i % 5 + 1;
            double want = op switch
            {
                ReduceOp.Sum => n * (n + 1) / 2.0 * b,
                ReduceOp.Avg => (n + 1) / 2.0 * b,
                _ => n * b,
            };
            Assert.That(got[root][i], Is.EqualTo(want).Within(1e-4), $"element {i}");
        }
    }

    [Test]
    public void A_half_precision_reduce_accumulates_in_fp32()
    {
        var got = new float[3][];
        Ranks.Run(
            3,
            pg =>
            {
                using var wide = Tensor.FromArray(Enumerable.Repeat(1000.5f, 3000).ToArray());
                using var t = wide.To(DType.Float16);
                pg.Reduce(t, new ReduceOptions { Root = 2 }).Wait();
                got[pg.Rank] = t.ToArray<float>();
            },
            Opts
        );
        Assert.That(got[2], Is.All.EqualTo(3001.5f).Within(2f), "one rounding at the end, not one per hop");
    }

    [Test]
    public void A_real_reduce_sends_about_half_the_bytes_of_an_allreduce_from_non_root_ranks()
    {
        var reduceBytes = new long[4];
        var allreduceBytes = new long[4];
        Ranks.Run(
            4,
            pg =>
            {
                using var t = Tensor.Ones([1 << 18]);
                long b0 = pg.BytesSent;
                pg.Reduce(t, new ReduceOptions { Root = 0 }).Wait();
                pg.Barrier().Wait();
                long b1 = pg.BytesSent;
                pg.AllReduce(t).Wait();
                pg.Barrier().Wait();
                reduceBytes[pg.Rank] = b1 - b0;
                allreduceBytes[pg.Rank] = pg.BytesSent - b1;
            },
            Opts
        );
        for (int r = 1; r < 4; r++)
            Assert.That(
                reduceBytes[r],
                Is.LessThan(allreduceBytes[r] * 0.7),
                $"rank {r}: reduce {reduceBytes[r]} B vs allreduce {allreduceBytes[r]} B"
            );
        Ranks.Run(1, pg =>
        {
            using var t = Tensor.Zeros([1]);
            Assert.Throws<ArgumentOutOfRangeException>(() => pg.Reduce(t, new ReduceOptions { Root = 3 }));
        });
    }
}

[TestFixture]
public class SpanCollectiveTests
{
    [Test]
    public void Collectives_on_spans_of_every_supported_type_give_the_closed_form_results()
    {
        Ranks.Run(3, pg =>
        {
            var f = new float[] { pg.Rank + 1, 2 * (pg.Rank + 1) };
            pg.AllReduce(f.AsSpan());
            Assert.That(f, Is.EqualTo(new float[] { 6, 12 }));
            var l = new long[] { 1L << 40 };
            pg.AllReduce(l.AsSpan(), new AllReduceOptions { Op = ReduceOp.Max });
            Assert.That(l[0], Is.EqualTo(1L << 40));
            var h = new Half[] { (Half)(pg.Rank + 0.5) };
            pg.AllReduce(h.AsSpan());
            Assert.That((float)h[0], Is.EqualTo(4.5f));
            var all = new double[3 * 2];
            pg.AllGather(all.AsSpan(), new double[] { pg.Rank, -pg.Rank });
            Assert.That(all, Is.EqualTo(new double[] { 0, 0, 1, -1, 2, -2 }));
            var mine = new int[2];
            pg.ReduceScatter(mine.AsSpan(), Enumerable.Range(0, 6).ToArray());
            Assert.That(mine, Is.EqualTo(new[] { 3 * (2 * pg.Rank), 3 * (2 * pg.Rank + 1) }));
            var b = new int[] { pg.Rank == 1 ? 42 : 0 };
            pg.Broadcast(b.AsSpan(), new BroadcastOptions { Root = 1 });
            Assert.That(b[0], Is.EqualTo(42));
            var r = new float[] { 1 };
            pg.Reduce(r.AsSpan(), new ReduceOptions { Root = 2 });
            Assert.That(r[0], Is.EqualTo(pg.Rank == 2 ? 3 : 1), "only the root's span changes");
            if (pg.Rank == 0)
                pg.Send(new ReadOnlySpan<long>([7, 8]), 1, tag: 5);
            if (pg.Rank == 1)
            {
                var got = new long[2];
                pg.Recv(got.AsSpan(), 0, tag: 5);
                Assert.That(got, Is.EqualTo(new long[] { 7, 8 }));
            }
            Assert.Throws<NotSupportedException>(() => pg.AllReduce(new decimal[1].AsSpan()));
        });
    }
}
