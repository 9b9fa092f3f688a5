using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>The shared-memory transport's own promises: chosen for same-host peers unless TCP is asked for, nothing
/// left in /dev/shm once the links are up, messages far larger than the ring, and clear errors for bad settings.
/// (Every op's closed form over shm: <see cref="CollectiveTests"/>; dead and frozen peers: <see cref="FailureTests"/>
/// and <see cref="MultiProcessTests"/>; mixed shm/TCP groups across hosts: <see cref="MultiHostTests"/>.)</summary>
[TestFixture]
public class ShmTransportTests
{
    private static TcpOptions Options(LinkTransport transport, long ring = 16L << 20) =>
        new()
        {
            Timeout = TimeSpan.FromSeconds(30),
            Transport = transport,
            ShmRingBytes = ring,
        };

    [TestCase(LinkTransport.Auto, "shm")]
    [TestCase(LinkTransport.Shm, "shm")]
    [TestCase(LinkTransport.Tcp, "tcp")]
    public void Same_host_peers_use_shared_memory_unless_tcp_is_asked_for(LinkTransport transport, string expected)
    {
        Ranks.Run(
            3,
            pg =>
            {
                for (int r = 0; r < pg.Size; r++)
                    Assert.That(
                        pg.TransportTo(r),
                        Is.EqualTo(r == pg.Rank ? "self" : expected),
                        $"rank {pg.Rank} to rank {r}"
                    );
            },
            Options(transport)
        );
    }

    [Test]
    public void No_segment_is_left_in_dev_shm_once_the_links_are_up()
    {
        string mine = $"hpcengine-{Environment.ProcessId}-";
        Ranks.Run(
            4,
            pg =>
            {
                pg.Barrier().Wait(); // every link of every rank is up
                var left = Directory.GetFiles("/dev/shm", mine + "*");
                Assert.That(left, Is.Empty, "segments are unlinked as soon as the peer has mapped them");
                using var x = Tensor.Full([1000], pg.Rank + 1f);
                pg.AllReduce(x).Wait();
                Assert.That(x.ToArray<float>(), Has.All.EqualTo(10f), "the unlinked segments still carry the data");
            },
            Options(LinkTransport.Shm)
        );
        Assert.That(Directory.GetFiles("/dev/shm", mine + "*"), Is.Empty);
    }

    [Test]
    public void Messages_many_times_the_ring_wrap_around_intact()
    {
        const int count = 1_000_003; // 4 MB of float32 through 64 KiB rings, not a multiple of anything
        Ranks.Run(
            2,
            pg =>
            {
                using var x = Tensor.FromArray(
                    Enumerable.Range(0, count).Select(i => (float)((pg.Rank + 1) * (i % 97))).ToArray()
                );
                pg.AllReduce(x).Wait();
                var got = x.ToArray<float>();
                for (int i = 0; i < count; i += 1)
                    if (got[i] != 3f * (i % 97))
                        Assert.Fail($"allreduce element {i}: {got[i]}");

                // Both directions at once, each far larger than the ring: neither side may wait for the other to read.
                using var mine = Tensor.FromArray(
                    Enumerable.Range(0, count).Select(i => (float)(pg.Rank * 1_000_000 + i % 1000)).ToArray()
                );
                using var theirs = Tensor.Zeros([count]);
                var recv = pg.Recv(theirs, 1 - pg.Rank);
                var send = pg.Send(mine, 1 - pg.Rank);
                send.Wait();
                recv.Wait();
                var t = theirs.ToArray<float>();
                for (int i = 0; i < count; i++)
                    if (t[i] != (1 - pg.Rank) * 1_000_000 + i % 1000)
                        Assert.Fail($"recv element {i}: {t[i]}");
            },
            Options(LinkTransport.Shm, ring: 64 * 1024)
        );
    }

    [Test]
    public void Many_ranks_on_few_cores_still_complete()
    {
        // 6 ranks on this machine's cores: waiters must sleep, not spin each other out.
        Ranks.Run(
            6,
            pg =>
            {
                for (int i = 0; i < 50; i++)
                {
                    using var x = Tensor.Full([4096], 1f);
                    pg.AllReduce(x).Wait();
                    Assert.That(x.ToArray<float>()[4095], Is.EqualTo(6f));
                }
            },
            Options(LinkTransport.Auto, ring: 1 << 20)
        );
    }

    [TestCase("bogus")]
    [TestCase("")]
    public void A_transport_that_is_not_one_is_a_clear_error(string value)
    {
        var e = Assert.Throws<FormatException>(() => TcpOptions.ParseTransport(value));
        Assert.That(e!.Message, Does.Contain("auto").And.Contain("tcp").And.Contain("shm"));
    }

    [TestCase(1000)]
    [TestCase(3L << 20)]
    public void A_ring_size_that_is_not_a_power_of_two_of_64_KiB_or_more_is_refused(long bytes)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _ = new TcpOptions { ShmRingBytes = bytes });
        Assert.That(e!.Message, Does.Contain("power of two"));
    }
}
