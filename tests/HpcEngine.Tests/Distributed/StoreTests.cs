using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using HpcEngine.Distributed;

namespace HpcEngine.Tests.Distributed;

[TestFixture]
public class StoreTests
{
    [Test]
    public void Set_get_add_compare_set_delete_and_wait()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        using var c = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, false);
        c.Set("a", [1, 2, 3]);
        Assert.That(server.Get("a"), Is.EqualTo(new byte[] { 1, 2, 3 }));
        Assert.That(c.Add("n", 5), Is.EqualTo(5));
        Assert.That(server.Add("n", -2), Is.EqualTo(3));
        Assert.That(c.CompareSet("k", [], [7]), Is.EqualTo(new byte[] { 7 }), "absent + empty expected sets");
        Assert.That(c.CompareSet("k", [8], [9]), Is.EqualTo(new byte[] { 7 }), "a wrong expectation leaves the value");
        Assert.That(c.CompareSet("k", [7], [9]), Is.EqualTo(new byte[] { 9 }));
        Assert.That(c.Delete("k"), Is.True);
        Assert.That(c.Delete("k"), Is.False);
        var waiter = Task.Run(() => c.Wait(["later"], TimeSpan.FromSeconds(10)));
        Thread.Sleep(100);
        Assert.That(waiter.IsCompleted, Is.False);
        server.Set("later", [1]);
        Assert.That(waiter.Wait(TimeSpan.FromSeconds(5)), Is.True);
    }

    [Test]
    public void An_ephemeral_key_lives_as_long_as_the_connection_that_set_it()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        var member = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, false);
        member.SetEphemeral("alive/3", [1]);
        member.Set("kept", [2]);
        Assert.That(server.Get("alive/3", TimeSpan.Zero), Is.EqualTo(new byte[] { 1 }), "there while it is connected");
        member.Dispose(); // a process that dies: the kernel closes its connection
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        bool gone = false;
        while (!gone && DateTime.UtcNow < deadline)
        {
            try
            {
                server.Get("alive/3", TimeSpan.Zero);
                Thread.Sleep(20);
            }
            catch (TimeoutException)
            {
                gone = true;
            }
        }
        Assert.That(gone, Is.True, "the ephemeral key left with its connection");
        Assert.That(server.Get("kept", TimeSpan.Zero), Is.EqualTo(new byte[] { 2 }), "a plain key stays");
    }

    [Test]
    public void A_timed_out_get_leaves_the_client_usable()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        using var c = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, false);
        var ex = Assert.Throws<TimeoutException>(() => c.Get("never", TimeSpan.FromMilliseconds(200)));
        Assert.That(ex!.Message, Does.Contain("never"));
        c.Set("x", [4]);
        Assert.That(c.Get("x"), Is.EqualTo(new byte[] { 4 }));
    }

    private static byte[] Request(byte cmd, int keyLen, byte[] key, uint valLen, byte[] val)
    {
        var ms = new MemoryStream();
        ms.WriteByte(cmd);
        var b = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(b, keyLen);
        ms.Write(b, 0, 4);
        ms.Write(key);
        BinaryPrimitives.WriteUInt32LittleEndian(b, valLen);
        ms.Write(b, 0, 4);
        ms.Write(val);
        return ms.ToArray();
    }

    public static IEnumerable<TestCaseData> HostileRequests()
    {
        yield return new TestCaseData(Request(1, 9000, [], 0, [])).SetName("key over 8 KiB");
        yield return new TestCaseData(Request(1, 1, [65], 9u << 20, [])).SetName("value over 8 MiB");
        var huge = Request(1, 1, [65], 0, []);
        yield return new TestCaseData(huge.Take(6).Concat(new byte[] { 0xFF, 0xFF, 0xFF, 0x7F }).ToArray()).SetName(
            "2^31 length prefix"
        );
        yield return new TestCaseData(new byte[] { 1, 5, 0, 0, 0, 65 }).SetName("truncated frame");
        yield return new TestCaseData(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).SetName(
            "garbage bytes"
        );
        yield return new TestCaseData(Request(42, 1, [65], 0, []).Concat(new byte[12]).ToArray()).SetName(
            "unknown command"
        );
    }

    [TestCaseSource(nameof(HostileRequests))]
    public void A_malformed_request_closes_only_its_connection_and_allocates_nothing_large(byte[] request)
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        using var good = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, false);
        good.Set("before", [1]);
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        using (var raw = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            raw.Connect("127.0.0.1", server.ServerPort!.Value);
            raw.ReceiveTimeout = 5000;
            var flag = new byte[1];
            Assert.That(raw.Receive(flag), Is.EqualTo(1), "the server greets with its auth flag");
            raw.Send(request);
            raw.Shutdown(SocketShutdown.Send); // a truncated frame ends here
            var buf = new byte[64];
            int n;
            try
            {
                n = raw.Receive(buf);
            }
            catch (SocketException)
            {
                n = 0;
            }
            Assert.That(n, Is.Zero, "the server closes the connection without answering");
        }
        Assert.That(
            GC.GetTotalAllocatedBytes(precise: true) - allocated,
            Is.LessThan(4 << 20),
            "no allocation sized by the hostile prefix"
        );
        Assert.That(good.Get("before"), Is.EqualTo(new byte[] { 1 }), "other clients are unaffected");
        good.Set("after", [2]);
        Assert.That(good.Get("after"), Is.EqualTo(new byte[] { 2 }));
    }

    [Test]
    public void Oversized_keys_and_values_are_refused_by_the_client_too()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        Assert.Throws<ArgumentException>(() => server.Set(new string('k', 9000), [1]));
        Assert.Throws<ArgumentException>(() => server.Set("k", new byte[9 << 20]));
    }

    [Test]
    public void A_wrong_or_missing_token_is_refused_before_any_state_changes()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true, new StoreOptions { Token = "s3cret" });
        int port = server.ServerPort!.Value;
        Assert.Throws<UnauthorizedAccessException>(() => TcpStore.Create("127.0.0.1", port, false));
        Assert.Throws<UnauthorizedAccessException>(() =>
            TcpStore.Create("127.0.0.1", port, false, new StoreOptions { Token = "guess" })
        );
        using var ok = TcpStore.Create("127.0.0.1", port, false, new StoreOptions { Token = "s3cret" });
        ok.Set("k", [1]);
        Assert.That(ok.Get("k"), Is.EqualTo(new byte[] { 1 }));
        Assert.That(ok.Add("attempts", 0), Is.Zero, "refused clients changed nothing");
    }

    [Test]
    public void Collectives_work_with_a_token()
    {
        Ranks.Run(
            3,
            pg =>
            {
                using var x = Tensor.FromArray([1f]);
                pg.AllReduce(x).Wait();
                Assert.That(x.Item(), Is.EqualTo(3));
            },
            new HpcEngine.Distributed.Tcp.TcpOptions { Token = "t0ken", Timeout = TimeSpan.FromSeconds(20) }
        );
    }
}
