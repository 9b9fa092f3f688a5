using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>A job's store belongs to it: other jobs, tokenless servers and runaway writers are refused; waits say
/// whom they wait for.</summary>
[TestFixture]
public class JobIsolationTests
{
    [Test]
    public void A_rank_of_another_job_is_refused_naming_both_jobs_and_changes_nothing()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true, new StoreOptions { JobId = "job-a" });
        int port = server.ServerPort!.Value;
        server.Set("pg/addr/0", [1]);
        var ex = Assert.Throws<InvalidOperationException>(() =>
            TcpStore.Create("127.0.0.1", port, false, new StoreOptions { JobId = "job-b" })
        );
        Assert.That(
            ex!.Message,
            Does.Contain("job-a")
                .And.Contain("job-b")
                .And.Contain(port.ToString(System.Globalization.CultureInfo.InvariantCulture))
        );
        using var same = TcpStore.Create("127.0.0.1", port, false, new StoreOptions { JobId = "job-a" });
        Assert.That(same.Get("pg/addr/0"), Is.EqualTo(new byte[] { 1 }), "the first job's state is untouched");
    }

    [Test]
    public void A_second_store_on_a_taken_port_says_the_port_is_in_use()
    {
        using var first = TcpStore.Create("127.0.0.1", 0, isServer: true, new StoreOptions { JobId = "job-a" });
        var ex = Assert.Throws<InvalidOperationException>(() =>
            TcpStore.Create("127.0.0.1", first.ServerPort!.Value, isServer: true, new StoreOptions { JobId = "job-b" })
        );
        Assert.That(ex!.Message, Does.Contain("in use").And.Contain("--master-port"));
    }

    [Test]
    public void A_rank_with_a_token_refuses_a_store_without_one()
    {
        using var open = TcpStore.Create("127.0.0.1", 0, isServer: true);
        var ex = Assert.Throws<UnauthorizedAccessException>(() =>
            TcpStore.Create("127.0.0.1", open.ServerPort!.Value, false, new StoreOptions { Token = "s3cret" })
        );
        Assert.That(ex!.Message, Does.Contain("does not authenticate"));
    }

    [Test]
    public void Writes_past_the_byte_cap_are_refused_and_deleting_frees_room()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true, new StoreOptions { MaxTotalBytes = 10_000 });
        using var c = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, false);
        c.Set("a", new byte[6000]);
        var ex = Assert.Throws<InvalidOperationException>(() => c.Set("b", new byte[6000]));
        Assert.That(ex!.Message, Does.Contain("10000-byte cap"));
        c.Set("a", new byte[3000]); // overwriting counts the new size only
        c.Set("b", new byte[6000]);
        Assert.Throws<InvalidOperationException>(() => c.CompareSet("c", [], new byte[2000]));
        Assert.That(c.Delete("b"), Is.True);
        c.Set("c", new byte[6000]);
        Assert.That(c.Get("a"), Has.Length.EqualTo(3000), "refused writes changed nothing");
    }

    [Test]
    public void Rendezvous_names_the_ranks_that_never_come()
    {
        var warnings = new List<string>();
        var options = new TcpOptions
        {
            ConnectTimeout = TimeSpan.FromSeconds(2),
            StallWarning = TimeSpan.FromMilliseconds(400),
            Warn = w =>
            {
                lock (warnings)
                    warnings.Add(w);
            },
        };
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        // Ranks 0 and 1 of 3 arrive; rank 2 never does.
        var one = Task.Run(() =>
        {
            using var store = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, false);
            return Assert.Throws<TimeoutException>(() => TcpProcessGroup.Connect(store, 1, 3, options, "r"));
        });
        var ex = Assert.Throws<TimeoutException>(() => TcpProcessGroup.Connect(server, 0, 3, options, "r"));
        Assert.That(ex!.Message, Does.Contain("2/3 ranks joined").And.Contain("missing: rank(s) 2"));
        Assert.That(one.Result!.Message, Does.Contain("missing: rank(s) 2"));
        lock (warnings)
            Assert.That(warnings, Has.Some.Contains("rank(s) 2"), string.Join("\n", warnings));
    }

    [Test]
    public void A_stalled_op_says_what_it_waits_on_before_it_times_out()
    {
        var warnings = new List<string>();
        var options = new TcpOptions
        {
            Timeout = TimeSpan.FromSeconds(2),
            ConnectTimeout = TimeSpan.FromSeconds(20),
            StallWarning = TimeSpan.FromMilliseconds(300),
            Warn = w =>
            {
                lock (warnings)
                    warnings.Add(w);
            },
        };
        using var release = new ManualResetEventSlim();
        var errors = Ranks.RunExpectingFailures(
            2,
            pg =>
            {
                using var x = Tensor.Ones([16]);
                if (pg.Rank == 1)
                {
                    release.Wait(TimeSpan.FromSeconds(10));
                    return;
                } // rank 1 never joins the allreduce
                try
                {
                    pg.AllReduce(x).Wait();
                }
                finally
                {
                    release.Set();
                }
            },
            options
        );
        Assert.That(errors[0], Is.InstanceOf<CollectiveException>());
        Assert.That(errors[0]!.Message, Does.Contain("allreduce #1").And.Contain("waiting for rank 1"));
        lock (warnings)
        {
            var stalls = warnings.Where(w => w.Contains("allreduce #1", StringComparison.Ordinal)).ToList();
            Assert.That(
                stalls.Count,
                Is.GreaterThanOrEqualTo(2),
                "repeated while it waits: " + string.Join("\n", warnings)
            );
            Assert.That(stalls[0], Does.Contain("waits on rank 1").And.Contain("no progress"));
        }
    }
}
