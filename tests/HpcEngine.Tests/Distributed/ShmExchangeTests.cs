using System.Diagnostics;
using HpcEngine.Distributed;
using HpcEngine.Distributed.Shm;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>The small-op path over shared memory (<see cref="ShmExchange"/>): which ops take it, closed-form results
/// across ring wrap-arounds, the same bits as the framed path, and the failures every op has — desync, timeout, a
/// crashed or departed peer. (Killed and stopped processes on it: <see cref="MultiProcessTests"/>.)</summary>
[TestFixture]
public class ShmExchangeTests
{
    private static TcpOptions Options(bool exchange = true, double timeoutSeconds = 30, long maxBytes = 64L << 20) =>
        new()
        {
            Timeout = TimeSpan.FromSeconds(timeoutSeconds),
            Transport = LinkTransport.Shm,
            ShmExchange = exchange,
            ShmExchangeMaxBytes = maxBytes,
        };

    [TestCase(true, ShmExchange.HeaderBytes)]
    [TestCase(false, LinkSocket.HeaderBytes)]
    public void A_small_allreduce_sends_its_data_once_with_the_header_of_its_path(bool exchange, int header)
    {
        Ranks.Run(
            2,
            pg =>
            {
                using var x = Tensor.Full([1000], pg.Rank + 1f);
                pg.AllReduce(x).Wait(); // the links are warm
                int peer = 1 - pg.Rank;
                long before = pg.BytesSentTo(peer);
                pg.AllReduce(x).Wait();
                Assert.That(pg.BytesSentTo(peer) - before, Is.EqualTo(header + 4000));
                Assert.That(x.ToArray<float>(), Has.All.EqualTo(6f)); // (1 + 2) then doubled
            },
            Options(exchange)
        );
    }

    [Test]
    public void A_long_allreduce_goes_in_pieces_each_with_its_header()
    {
        int pieces = 3,
            count = (2 * ShmExchange.MaxPayload + 1000) / 4;
        Ranks.Run(
            2,
            pg =>
            {
                using var x = Tensor.Full([count], pg.Rank + 1f);
                long before = pg.BytesSentTo(1 - pg.Rank);
                pg.AllReduce(x).Wait();
                Assert.That(
                    pg.BytesSentTo(1 - pg.Rank) - before,
                    Is.EqualTo(pieces * ShmExchange.HeaderBytes + count * 4L)
                );
                Assert.That(x.ToArray<float>(), Has.All.EqualTo(3f));
            },
            Options()
        );
    }

    [Test]
    public void Sub_groups_and_ops_above_the_limit_take_the_framed_path_and_still_agree()
    {
        Ranks.Run(
            3,
            pg =>
            {
                using var sub = pg.NewGroup([0, 2]);
                using var big = Tensor.Full([2000], pg.Rank + 1f);
                Assert.That(pg.RunsOnExchange(4096), Is.True);
                Assert.That(pg.RunsOnExchange(8000), Is.False, "above ShmExchangeMaxBytes");
                pg.AllReduce(big).Wait();
                Assert.That(big.ToArray<float>(), Has.All.EqualTo(6f));
                if (sub != null)
                {
                    using var s = Tensor.Full([10], pg.Rank + 1f);
                    sub.AllReduce(s).Wait();
                    Assert.That(s.ToArray<float>(), Has.All.EqualTo(4f));
                }
            },
            Options(maxBytes: 4096)
        );
    }

    [Test]
    public void Every_dtype_and_reduction_gives_the_closed_form_across_many_ring_wraps(
        [Values(2, 3, 5)] int n,
        [Values(DType.Float32, DType.Float64, DType.Int32, DType.Int64)] DType dtype,
        [Values(ReduceOp.Sum, ReduceOp.Max, ReduceOp.Min, ReduceOp.Avg, ReduceOp.Product)] ReduceOp op
    )
    {
        int element = dtype.SizeOf();
        int[] counts =
        [
            1,
            7,
            1237,
            ShmExchange.MaxPayload / element,
            4093,
            (5 * ShmExchange.MaxPayload / 2 + 8) / element,
        ];
        Ranks.Run(
            n,
            pg =>
            {
                for (int round = 0; round < 14; round++)
                {
                    int count = counts[round % counts.Length];
                    // rank r holds r + 1 + (i % 3): integers, so every reduction is exact in every dtype
                    var values = Enumerable.Range(0, count).Select(i => (double)(pg.Rank + 1 + i % 3)).ToArray();
                    using var d = Tensor.FromArray(values);
                    using var x = d.To(dtype);
                    pg.AllReduce(x, new AllReduceOptions { Op = op }).Wait();
                    using var back = x.To(DType.Float64);
                    var got = back.ToArray<double>();
                    for (int i = 0; i < count; i += Math.Max(1, count / 97))
                    {
                        var all = Enumerable.Range(1, n).Select(r => (double)(r + i % 3)).ToArray();
                        double want = op switch
                        {
                            ReduceOp.Sum => all.Sum(),
                            ReduceOp.Max => all.Max(),
                            ReduceOp.Min => all.Min(),
                            ReduceOp.Product => all.Aggregate(1.0, (a, b) => a * b),
                            _ => dtype is DType.Int32 or DType.Int64 ? Math.Floor(all.Sum() / n) : all.Sum() / n,
                        };
                        Assert.That(
                            got[i],
                            Is.EqualTo(want).Within(1e-6 * Math.Max(1, want)),
                            $"round {round}, element {i} of {count}"
                        );
                    }
                }
            },
            Options()
        );
    }

    [TestCase(3)]
    [TestCase(4)]
    public void The_exchange_gives_the_framed_path_s_bits_on_every_rank(int n)
    {
        static float[] Data(int rank)
        {
            var rng = new Random(17 + rank);
            return Enumerable.Range(0, 3001).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        }
        var viaExchange = new float[n][];
        var viaFrames = new float[n][];
        foreach (var (exchange, into) in new[] { (true, viaExchange), (false, viaFrames) })
            Ranks.Run(
                n,
                pg =>
                {
                    using var x = Tensor.FromArray(Data(pg.Rank));
                    pg.AllReduce(x).Wait();
                    into[pg.Rank] = x.ToArray<float>();
                },
                Options(exchange)
            );
        for (int r = 0; r < n; r++)
        {
            Assert.That(viaExchange[r], Is.EqualTo(viaExchange[0]), $"rank {r} ends bitwise equal to rank 0");
            Assert.That(viaExchange[r], Is.EqualTo(viaFrames[r]), $"rank {r}: exchange and frames differ");
        }
    }

    [Test]
    public void A_desync_is_named_on_both_sides_even_without_the_debug_check()
    {
        var errors = Ranks.RunExpectingFailures(
            2,
            pg =>
            {
                using var x = Tensor.Ones([pg.Rank == 0 ? 1000 : 1001]);
                pg.AllReduce(x).Wait();
            },
            Options()
        );
        foreach (var e in errors)
        {
            Assert.That(e, Is.InstanceOf<CollectiveException>());
            Assert.That(e!.Message, Does.Contain("desync").And.Contain("x1000").And.Contain("x1001"), e.Message);
            Assert.That(
                ((CollectiveException)e).FlightRecord,
                Does.Contain("allreduce"),
                "the flight record comes along"
            );
        }
    }

    [Test]
    public void A_peer_that_never_comes_times_out_naming_it()
    {
        using var failed = new ManualResetEventSlim();
        var sw = Stopwatch.StartNew();
        var errors = Ranks.RunExpectingFailures(
            2,
            pg =>
            {
                if (pg.Rank == 1)
                {
                    failed.Wait(TimeSpan.FromSeconds(30)); // alive, but never joins the op
                    return;
                }
                using var x = Tensor.Ones([256]);
                try
                {
                    pg.AllReduce(x, new AllReduceOptions { Timeout = TimeSpan.FromSeconds(1) }).Wait();
                }
                finally
                {
                    failed.Set();
                }
            },
            Options()
        );
        var ce = errors[0] as CollectiveException;
        Assert.That(ce, Is.Not.Null, $"{errors[0]}");
        Assert.That(ce!.Peer, Is.EqualTo(1));
        Assert.That(ce.Message, Does.Contain("timed out after 1.0s waiting for rank 1"), ce.Message);
        Assert.That(ce.FlightRecord, Does.Contain("allreduce").And.Contain("timed out"));
        Assert.That(sw.Elapsed.TotalSeconds, Is.LessThan(20));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void A_peer_that_crashes_or_leaves_fails_the_waiting_op_at_once_naming_it(bool crash)
    {
        var waited = new double[2];
        var errors = Ranks.RunExpectingFailures(
            2,
            pg =>
            {
                using var x = Tensor.Ones([256]);
                pg.AllReduce(x).Wait();
                if (pg.Rank == 1)
                {
                    Thread.Sleep(300); // rank 0 is asleep in its next op by now
                    if (crash)
                        pg.SimulateCrash();
                    return; // leaving: the group is disposed, which says goodbye
                }
                var sw = Stopwatch.StartNew();
                try
                {
                    pg.AllReduce(x).Wait();
                }
                finally
                {
                    waited[0] = sw.Elapsed.TotalSeconds;
                }
            },
            Options(timeoutSeconds: 60)
        );
        var ce = errors[0] as CollectiveException;
        Assert.That(ce, Is.Not.Null, $"{errors[0]}");
        Assert.That(ce!.Message, Does.Contain("rank 1"), ce.Message);
        Assert.That(ce.Message, Does.Not.Contain("timed out"), ce.Message);
        Assert.That(waited[0], Is.LessThan(10), "failed long before the 60 s timeout");
    }
}
