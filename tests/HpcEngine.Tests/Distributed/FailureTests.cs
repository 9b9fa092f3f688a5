using System.Diagnostics;
using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

[TestFixture(LinkTransport.Tcp)]
[TestFixture(LinkTransport.Shm)]
public class FailureTests(LinkTransport transport)
{
    [Test]
    public void A_peer_that_dies_mid_allreduce_fails_every_survivor_fast_naming_it()
    {
        // A capped link rate makes the 16 MB allreduce take about a second, so the crash at 30 ms is mid-op
        // however fast the machine.
        var opts = new TcpOptions
        {
            Transport = transport,
            Timeout = TimeSpan.FromSeconds(60),
            ChunkBytes = 1 << 14,
            Emulation = new NetworkEmulation(25e6, TimeSpan.Zero),
        };
        var elapsed = new double[4];
        var errors = Ranks.RunExpectingFailures(
            4,
            pg =>
            {
                using var x = Tensor.Ones([4_000_000]);
                if (pg.Rank == 2)
                {
                    var w = pg.AllReduce(x);
                    Thread.Sleep(30);
                    pg.SimulateCrash();
                    try
                    {
                        w.Wait();
                    }
                    catch (CollectiveException) { }
                    return;
                }
                var sw = Stopwatch.StartNew();
                try
                {
                    pg.AllReduce(x).Wait();
                }
                finally
                {
                    elapsed[pg.Rank] = sw.Elapsed.TotalSeconds;
                }
            },
            opts
        );
        foreach (int r in new[] { 0, 1, 3 })
        {
            Assert.That(errors[r], Is.InstanceOf<CollectiveException>(), $"rank {r}: {errors[r]}");
            var ce = (CollectiveException)errors[r]!;
            Assert.That(ce.Op, Is.EqualTo("allreduce"));
            Assert.That(ce.Rank, Is.EqualTo(r));
            Assert.That(ce.Message, Does.Contain("rank 2").Or.Contain("rank "), ce.Message);
            Assert.That(ce.FlightRecord, Does.Contain("allreduce"));
            Assert.That(elapsed[r], Is.LessThan(5), $"rank {r} took {elapsed[r]:F1}s to notice");
        }
        // The ranks next to the dead one name it as the peer.
        Assert.That(
            ((CollectiveException)errors[3]!).Message + ((CollectiveException)errors[1]!).Message,
            Does.Contain("rank 2")
        );
    }

    [Test]
    public void A_frozen_peer_fails_the_others_at_their_timeout()
    {
        var opts = new TcpOptions { Transport = transport, Timeout = TimeSpan.FromSeconds(2) };
        var errors = Ranks.RunExpectingFailures(
            3,
            pg =>
            {
                using var x = Tensor.Ones([1000]);
                if (pg.Rank == 1)
                {
                    Thread.Sleep(4000);
                    return;
                } // never joins the op
                var sw = Stopwatch.StartNew();
                var ex = Assert.Throws<CollectiveException>(() => pg.AllReduce(x).Wait());
                Assert.That(sw.Elapsed.TotalSeconds, Is.InRange(1.5, 10));
                throw ex!;
            },
            opts,
            timeoutSeconds: 30
        );
        var e0 = (CollectiveException)errors[0]!;
        Assert.That(e0.Message, Does.Contain("timed out after 2.0s"));
        Assert.That(e0.Peer, Is.EqualTo(1), e0.Message);
        Assert.That(errors[2], Is.InstanceOf<CollectiveException>());
    }

    [Test]
    public void Every_op_after_a_failure_fails_at_once()
    {
        var opts = new TcpOptions { Transport = transport, Timeout = TimeSpan.FromSeconds(30) };
        var errors = Ranks.RunExpectingFailures(
            2,
            pg =>
            {
                using var x = Tensor.Ones([10]);
                if (pg.Rank == 1)
                {
                    pg.SimulateCrash();
                    return;
                }
                Assert.Throws<CollectiveException>(() => pg.AllReduce(x).Wait());
                var sw = Stopwatch.StartNew();
                Assert.Throws<CollectiveException>(() => pg.Broadcast(x).Wait());
                Assert.That(sw.Elapsed.TotalSeconds, Is.LessThan(1));
            },
            opts
        );
        Assert.That(errors[0], Is.Null, errors[0]?.ToString());
    }

    [Test]
    public void Desync_check_names_both_sides()
    {
        var opts = new TcpOptions
        {
            Transport = transport,
            Timeout = TimeSpan.FromSeconds(10),
            CheckDesync = true,
        };
        var errors = Ranks.RunExpectingFailures(
            2,
            pg =>
            {
                using var x = Tensor.Ones([pg.Rank == 0 ? 10 : 11]);
                pg.AllReduce(x).Wait();
            },
            opts
        );
        var msg = errors[0]?.Message ?? "";
        Assert.That(errors[0], Is.InstanceOf<CollectiveException>());
        Assert.That(msg, Does.Contain("desync").And.Contain("x10").And.Contain("x11"), msg);
    }

    [Test]
    public void Size_mismatch_without_the_desync_check_is_still_an_error_not_a_hang()
    {
        var opts = new TcpOptions { Transport = transport, Timeout = TimeSpan.FromSeconds(10) };
        var errors = Ranks.RunExpectingFailures(
            2,
            pg =>
            {
                using var x = Tensor.Ones([pg.Rank == 0 ? 100 : 101]);
                pg.AllReduce(x, new AllReduceOptions { Algorithm = AllReduceAlgorithm.Direct }).Wait();
            },
            opts
        );
        Assert.That(
            errors.All(e => e is CollectiveException),
            Is.True,
            string.Join("; ", errors.Select(e => e?.Message))
        );
        Assert.That(
            errors.Any(e => e!.Message.Contains("disagree on the tensor size", StringComparison.Ordinal)),
            Is.True
        );
    }

    [Test]
    public void Missing_ranks_time_out_with_how_many_joined()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        var opts = new TcpOptions { Transport = transport, ConnectTimeout = TimeSpan.FromSeconds(2) };
        Exception? e0 = null,
            e1 = null;
        var t0 = new Thread(() =>
        {
            try
            {
                TcpProcessGroup.Connect(server, 0, 3, opts, "m").Dispose();
            }
            catch (Exception e)
            {
                e0 = e;
            }
        });
        var t1 = new Thread(() =>
        {
            try
            {
                using var c = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, false);
                TcpProcessGroup.Connect(c, 2, 3, opts, "m").Dispose();
            }
            catch (Exception e)
            {
                e1 = e;
            }
        });
        t0.Start();
        t1.Start();
        Assert.That(t0.Join(TimeSpan.FromSeconds(30)) && t1.Join(TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(e1, Is.InstanceOf<TimeoutException>());
        Assert.That(e1!.Message, Does.Contain("2/3 ranks joined"));
        Assert.That(e0, Is.InstanceOf<TimeoutException>());
    }
}
