using System.Collections.Concurrent;
using HpcEngine.Distributed;
using HpcEngine.Distributed.Elastic;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>Elastic groups of 4 members as threads of this process: a lost member (crashed, frozen or gone) is dropped
/// and the survivors go on in a new generation with closed-form collectives; a member that comes back too late is
/// fenced; a leaving member is not waited for.</summary>
public class ElasticGroupTests
{
    // Fast detection for tests: a heartbeat every 100 ms, a peer silent for 600 ms is lost. A long quorum timeout:
    // every test must close its quorum because the loss was accounted for, not because time ran out.
    private static readonly ElasticOptions Opts = new()
    {
        Tcp = new TcpOptions
        {
            Timeout = TimeSpan.FromSeconds(60),
            HeartbeatInterval = TimeSpan.FromMilliseconds(100),
            PeerTimeout = TimeSpan.FromMilliseconds(600),
        },
        QuorumTimeout = TimeSpan.FromSeconds(60),
    };

    /// <summary>Runs members 0..n−1 on threads; each gets its own store client and its started group.</summary>
    private static Exception?[] RunMembers(
        int n,
        Action<ElasticGroup> body,
        int timeoutSeconds = 40,
        ElasticOptions? options = null
    )
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        var errors = new Exception?[n];
        var threads = Enumerable
            .Range(0, n)
            .Select(id => new Thread(() =>
            {
                try
                {
                    using var store = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, isServer: false);
                    using var g = ElasticGroup.Start(store, id, n, options ?? Opts);
                    body(g);
                }
                catch (Exception e)
                {
                    errors[id] = e;
                }
            })
            {
                IsBackground = true,
            })
            .ToArray();
        foreach (var t in threads)
            t.Start();
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        foreach (var t in threads)
            if (!t.Join(deadline - DateTime.UtcNow > TimeSpan.Zero ? deadline - DateTime.UtcNow : TimeSpan.Zero))
                Assert.Fail($"members did not finish within {timeoutSeconds}s");
        return errors;
    }

    /// <summary>Allreduces (member id + 1) and returns the sum.</summary>
    private static float SumOfIds(ElasticGroup g)
    {
        using var x = Tensor.Full([5], g.MemberId + 1f);
        g.Group.AllReduce(x).Wait();
        return x.ToArray<float>()[4];
    }

    /// <summary>Runs one step; on a collective failure re-forms the group and runs it again.</summary>
    private static float StepWithRecovery(ElasticGroup g, ConcurrentBag<MembershipEvent> events)
    {
        try
        {
            return SumOfIds(g);
        }
        catch (CollectiveException)
        {
            events.Add(g.Recover());
            return SumOfIds(g);
        }
    }

    [Test]
    public void A_crashed_member_is_dropped_and_the_survivors_go_on_ranked_by_member_id()
    {
        var events = new ConcurrentBag<MembershipEvent>();
        var after = new ConcurrentDictionary<int, (float Sum, int Rank, int Size, int Generation)>();
        var errors = RunMembers(4, g =>
        {
            Assert.That(SumOfIds(g), Is.EqualTo(10f));
            if (g.MemberId == 2)
            {
                g.Group.SimulateCrash(); // and this "process" is gone
                return;
            }
            float sum = StepWithRecovery(g, events);
            after[g.MemberId] = (sum, g.Group.Rank, g.Group.Size, g.Generation);
        });
        Assert.That(errors, Is.All.Null);
        Assert.That(after[0], Is.EqualTo((7f, 0, 3, 1)));
        Assert.That(after[1], Is.EqualTo((7f, 1, 3, 1)));
        Assert.That(after[3], Is.EqualTo((7f, 2, 3, 1)), "member 3 is rank 2 of generation 1");
        Assert.That(events, Has.Count.EqualTo(3));
        foreach (var e in events)
        {
            Assert.That(e.Lost, Is.EqualTo(new[] { 2 }));
            Assert.That(e.Left, Is.Empty);
            Assert.That(e.WorldSizeAfter, Is.EqualTo(3));
        }
    }

    [Test]
    public void Two_members_lost_at_once_are_both_dropped_without_waiting_out_the_quorum()
    {
        // Each survivor reports only the first link that failed; the other dead member is known by its ephemeral key
        // leaving the store. Without that, the quorum would wait its 60 s and the members miss the 40 s deadline.
        var events = new ConcurrentBag<MembershipEvent>();
        var after = new ConcurrentDictionary<int, (float Sum, int Size)>();
        var errors = RunMembers(4, g =>
        {
            Assert.That(SumOfIds(g), Is.EqualTo(10f));
            if (g.MemberId is 1 or 2)
            {
                g.Group.SimulateCrash(); // and this "process" is gone, its store connection with it
                return;
            }
            float sum = StepWithRecovery(g, events);
            after[g.MemberId] = (sum, g.Group.Size);
        });
        Assert.That(errors, Is.All.Null);
        Assert.That(after[0], Is.EqualTo((5f, 2)));
        Assert.That(after[3], Is.EqualTo((5f, 2)));
        foreach (var e in events)
            Assert.That(e.Lost, Is.EquivalentTo(new[] { 1, 2 }));
    }

    [Test]
    public void A_frozen_member_is_dropped_after_the_peer_timeout_and_fenced_when_it_wakes()
    {
        var events = new ConcurrentBag<MembershipEvent>();
        var sums = new ConcurrentDictionary<int, float>();
        using var survivorsDone = new CountdownEvent(3);
        var errors = RunMembers(4, g =>
        {
            SumOfIds(g);
            if (g.MemberId == 1)
            {
                g.Group.SimulateFreeze(); // silent from now on, sockets open
                survivorsDone.Wait(TimeSpan.FromSeconds(30));
                SumOfIds(g); // wakes up: its old group is gone ...
                return;
            }
            sums[g.MemberId] = StepWithRecovery(g, events);
            survivorsDone.Signal();
        });
        Assert.That(sums.Values, Is.All.EqualTo(1f + 3f + 4f));
        Assert.That(events.Select(e => e.Lost.Single()), Is.All.EqualTo(1));
        Assert.That(errors[1], Is.InstanceOf<CollectiveException>(), "... so its next op fails");
        Assert.That(errors.Where((e, id) => id != 1), Is.All.Null);
    }

    [Test]
    public void A_member_that_comes_back_after_the_quorum_closed_is_removed_from_the_job()
    {
        var errors = RunMembers(3, g =>
        {
            SumOfIds(g);
            if (g.MemberId == 2)
            {
                g.Group.SimulateFreeze();
                Thread.Sleep(3000); // the others re-form without it meanwhile
                try
                {
                    SumOfIds(g);
                }
                catch (CollectiveException)
                {
                    g.Recover(); // too late: fenced
                }
                return;
            }
            StepWithRecovery(g, []);
        });
        Assert.That(errors[2], Is.InstanceOf<RemovedFromJobException>());
        Assert.That(errors[2]!.Message, Does.Contain("generation 1 was formed without member 2"));
        Assert.That(errors[0], Is.Null);
        Assert.That(errors[1], Is.Null);
    }

    [Test]
    public void A_leaving_member_is_not_waited_for_and_is_recorded_as_left()
    {
        var events = new ConcurrentBag<MembershipEvent>();
        var sums = new ConcurrentDictionary<int, float>();
        var errors = RunMembers(4, g =>
        {
            SumOfIds(g);
            if (g.MemberId == 0)
            {
                g.Leave(); // rank 0 leaving: the others must not depend on it
                return;
            }
            sums[g.MemberId] = StepWithRecovery(g, events);
        });
        Assert.That(errors, Is.All.Null);
        Assert.That(sums.Values, Is.All.EqualTo(2f + 3f + 4f));
        foreach (var e in events)
        {
            Assert.That(e.Left, Is.EqualTo(new[] { 0 }));
            Assert.That(e.Lost, Is.Empty);
        }
    }

    [Test]
    public void Two_losses_in_a_row_make_two_generations()
    {
        var final = new ConcurrentDictionary<int, (float Sum, int Generation)>();
        var errors = RunMembers(4, g =>
        {
            SumOfIds(g);
            if (g.MemberId == 3)
            {
                g.Group.SimulateCrash();
                return;
            }
            StepWithRecovery(g, []);
            if (g.MemberId == 0)
            {
                g.Group.SimulateCrash();
                return;
            }
            float sum = StepWithRecovery(g, []);
            final[g.MemberId] = (sum, g.Generation);
        });
        Assert.That(errors, Is.All.Null);
        Assert.That(final[1], Is.EqualTo((2f + 3f, 2)));
        Assert.That(final[2], Is.EqualTo((2f + 3f, 2)));
    }

    [Test]
    public void A_joiner_is_admitted_at_a_step_boundary_into_a_new_generation()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        var sums = new ConcurrentDictionary<int, (float Sum, int Rank, int Size)>();
        var errors = new ConcurrentBag<Exception>();
        using var started = new ManualResetEventSlim();
        void Guard(Action a)
        {
            try
            {
                a();
            }
            catch (Exception e)
            {
                errors.Add(e);
            }
        }
        var members = Enumerable
            .Range(0, 2)
            .Select(id => new Thread(() =>
                Guard(() =>
                {
                    using var store = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, isServer: false);
                    using var g = ElasticGroup.Start(store, id, 2, Opts);
                    SumOfIds(g);
                    started.Set();
                    // Step boundaries: rank 0 reads the count, every member learns it, all admit together.
                    long registered = 0;
                    while (registered == 0)
                    {
                        var n = new[] { g.Group.Rank == 0 ? g.PendingJoiners() : 0 };
                        g.Group.Broadcast<long>(n, new BroadcastOptions());
                        registered = n[0];
                        Thread.Sleep(10);
                    }
                    var e = g.Admit(registered);
                    Assert.That(e.Joined, Is.EqualTo(new[] { 2 }));
                    sums[g.MemberId] = (SumOfIds(g), g.Group.Rank, g.Group.Size);
                })
            ))
            .ToList();
        var joiner = new Thread(() =>
            Guard(() =>
            {
                started.Wait(TimeSpan.FromSeconds(20));
                using var store = TcpStore.Create("127.0.0.1", server.ServerPort!.Value, isServer: false);
                using var g = ElasticGroup.Join(store, Opts, TimeSpan.FromSeconds(20));
                Assert.That((g.MemberId, g.Generation, g.AwaitsState), Is.EqualTo((2, 1, true)));
                sums[g.MemberId] = (SumOfIds(g), g.Group.Rank, g.Group.Size);
            })
        );
        foreach (var t in members.Append(joiner))
            t.Start();
        foreach (var t in members.Append(joiner))
            Assert.That(t.Join(TimeSpan.FromSeconds(40)), Is.True);
        Assert.That(errors, Is.Empty);
        Assert.That(sums[0], Is.EqualTo((6f, 0, 3)));
        Assert.That(sums[1], Is.EqualTo((6f, 1, 3)));
        Assert.That(sums[2], Is.EqualTo((6f, 2, 3)), "the joiner is rank 2 of generation 1");
    }

    [Test]
    public void Fewer_survivors_than_the_minimum_is_an_error_that_says_to_resume_from_a_checkpoint()
    {
        var errors = RunMembers(
            3,
            g =>
            {
                SumOfIds(g);
                if (g.MemberId == 1)
                {
                    g.Group.SimulateCrash();
                    return;
                }
                try
                {
                    SumOfIds(g);
                }
                catch (CollectiveException)
                {
                    g.Recover();
                }
            },
            options: Opts with
            {
                MinSize = 3,
            }
        );
        Assert.That(errors[0], Is.InstanceOf<CollectiveException>());
        Assert.That(errors[0]!.Message, Does.Contain("fewer than the minimum of 3").And.Contain("checkpoint"));
    }
}
