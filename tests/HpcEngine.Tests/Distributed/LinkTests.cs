using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>The link layer under the collectives: several sockets per link (frames spread over them and put back in
/// order), the waiter reading for its own op, and the handshake refusing a peer configured differently.</summary>
[TestFixture]
public class LinkTests
{
    private static TcpOptions Sockets(int k) =>
        new()
        {
            Timeout = TimeSpan.FromSeconds(30),
            ConnectTimeout = TimeSpan.FromSeconds(20),
            SocketsPerLink = k,
            ChunkBytes = 1 << 14, // many chunks per op, so consecutive frames take different sockets
        };

    [TestCase(2, 2)]
    [TestCase(3, 3)]
    [TestCase(4, 4)]
    public void Collectives_over_several_sockets_per_link_are_exact(int n, int k)
    {
        Ranks.Run(
            n,
            pg =>
            {
                // Sizes on both sides of the small-message threshold: recursive doubling and the chunked ring.
                foreach (int count in new[] { 1, 1000, 250_003 })
                {
                    var v = new float[count];
                    for (int i = 0; i < count; i++)
                        v[i] = (pg.Rank + 1) * (i % 11 + 1);
                    using var x = Tensor.FromArray(v);
                    pg.AllReduce(x).Wait();
                    var got = x.ToArray<float>();
                    for (int i = 0; i < count; i++)
                        if (got[i] != n * (n + 1) / 2f * (i % 11 + 1))
                            Assert.Fail($"allreduce count {count}: element {i} is {got[i]}");
                }
                using var mine = Tensor.Full([40_000], pg.Rank + 1f);
                using var all = Tensor.Zeros([40_000 * n]);
                pg.AllGather(all, mine).Wait();
                var g = all.ToArray<float>();
                for (int i = 0; i < g.Length; i++)
                    if (g[i] != i / 40_000 + 1)
                        Assert.Fail($"allgather element {i} is {g[i]}");
                using var b = pg.Rank == n - 1 ? Tensor.Arange(0, 100_000, 1, DType.Float32) : Tensor.Zeros([100_000]);
                pg.Broadcast(b, new BroadcastOptions { Root = n - 1 }).Wait();
                Assert.That(b.ToArray<float>()[99_999], Is.EqualTo(99_999f));
            },
            Sockets(k)
        );
    }

    [Test]
    public void Frames_of_one_tag_arrive_in_the_order_sent_across_sockets()
    {
        // Mixed sizes (a 1-byte frame right behind a 300 KB one) on 4 sockets: the small one travels on another
        // socket and arrives first, and must still be delivered second.
        int[] sizes = Enumerable
            .Range(0, 120)
            .Select(i =>
                i % 3 == 0 ? 75_000 + i
                : i % 3 == 1 ? 1
                : 257 * i
            )
            .ToArray();
        Ranks.Run(
            2,
            pg =>
            {
                if (pg.Rank == 0)
                {
                    var works = new List<Work>();
                    var tensors = new List<Tensor>();
                    for (int i = 0; i < sizes.Length; i++)
                    {
                        var t = Tensor.Full([sizes[i]], i);
                        tensors.Add(t);
                        works.Add(pg.Send(t, 1, tag: 5));
                    }
                    foreach (var w in works)
                        w.Wait();
                    foreach (var t in tensors)
                        t.Dispose();
                }
                else
                {
                    for (int i = 0; i < sizes.Length; i++)
                    {
                        using var t = Tensor.Zeros([sizes[i]]);
                        pg.Recv(t, 0, tag: 5).Wait();
                        var got = t.ToArray<float>();
                        Assert.That(got[0], Is.EqualTo(i), $"message {i}");
                        Assert.That(got[^1], Is.EqualTo(i), $"message {i}");
                    }
                }
                pg.Barrier().Wait();
            },
            Sockets(4)
        );
    }

    [Test]
    public void Small_ops_waited_on_in_a_loop_and_async_ops_in_flight_all_complete()
    {
        // The waiting thread reads for its small op while large ops (left to the reader threads) are in flight
        // on the same links: both paths deliver into the same inboxes.
        Ranks.Run(
            3,
            pg =>
            {
                using var big = Tensor.Full([300_000], pg.Rank + 1f);
                var bigWork = pg.AllReduce(big);
                for (int i = 0; i < 200; i++)
                {
                    using var s = Tensor.Full([16], (float)i);
                    pg.AllReduce(s).Wait();
                    Assert.That(s.ToArray<float>()[15], Is.EqualTo(3f * i));
                }
                bigWork.Wait();
                Assert.That(big.ToArray<float>()[299_999], Is.EqualTo(6f));
            },
            Sockets(1)
        );
    }

    [Test]
    public void A_peer_with_a_different_socket_count_is_refused_with_a_clear_error()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        var errors = new Exception?[2];
        var threads = new[] { 1, 2 }
            .Select(
                (k, r) =>
                    new Thread(() =>
                    {
                        try
                        {
                            using var store =
                                r == 0 ? null : TcpStore.Create("127.0.0.1", server.ServerPort!.Value, false);
                            var o = Sockets(k) with
                            {
                                ConnectTimeout = TimeSpan.FromSeconds(5),
                                Timeout = TimeSpan.FromSeconds(5),
                            };
                            using var pg = TcpProcessGroup.Connect(r == 0 ? server : store!, r, 2, o, prefix: "k");
                            pg.Barrier().Wait();
                        }
                        catch (Exception e)
                        {
                            errors[r] = e;
                        }
                    })
                    {
                        IsBackground = true,
                    }
            )
            .ToArray();
        foreach (var t in threads)
            t.Start();
        foreach (var t in threads)
            Assert.That(t.Join(TimeSpan.FromSeconds(30)), Is.True, "a rank hung");
        Assert.That(errors[0], Is.InstanceOf<InvalidOperationException>());
        Assert.That(errors[0]!.Message, Does.Contain("2 socket(s) per link").And.Contain("HPCENGINE_SOCKETS_PER_LINK"));
        Assert.That(errors[1], Is.Not.Null, "the other rank must fail too, not hang");
    }

    [Test]
    public void Sockets_per_link_is_validated_and_read_from_the_environment()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new TcpOptions { SocketsPerLink = 0 });
        Environment.SetEnvironmentVariable("HPCENGINE_SOCKETS_PER_LINK", "3");
        try
        {
            Assert.That(TcpOptions.FromEnvironment("127.0.0.1").SocketsPerLink, Is.EqualTo(3));
        }
        finally
        {
            Environment.SetEnvironmentVariable("HPCENGINE_SOCKETS_PER_LINK", null);
        }
    }
}
