using System.Diagnostics;
using System.Globalization;
using System.Text;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Distributed.Elastic;

/// <summary>A process group that outlives its members: when a rank is lost (its link fails: death, a reset, or
/// silence past <see cref="TcpOptions.PeerTimeout"/>), every survivor's ops fail with a
/// <see cref="CollectiveException"/> (the mesh aborts at once), each calls <see cref="Recover"/>, and together they
/// form the next generation through the store — a new TCP / shared-memory group of the survivors, ranked by member id,
/// under its own key prefix, so nothing of the old generation can reach it. A process that finds the new generation
/// formed without it (it was frozen, or came back too late) gets a <see cref="RemovedFromJobException"/>: fencing.
/// The store must outlive the members (a launcher agent hosts it, not a training process).
/// <para>The quorum: the first survivor to arrive for generation g+1 keeps it open until every member of g has
/// arrived, left (<see cref="Leave"/>) or been reported lost by a survivor's failed link (then
/// <see cref="ElasticOptions.SuspectGrace"/> more), or <see cref="ElasticOptions.QuorumTimeout"/> passes; it then
/// writes the member list once (compare-and-set), and every survivor reads the same list. A member whose process is
/// gone counts as reported lost even when no survivor's link blamed it: its ephemeral <c>alive</c> key left the store
/// with its connection.</para></summary>
public sealed partial class ElasticGroup : IDisposable
{
    private readonly IStore _store;
    private readonly ElasticOptions _options;
    private readonly List<MembershipEvent> _events = [];
    private TcpProcessGroup? _group;
    private IStore? _ownedStore;

    /// <summary>The generation (0 for the group as started).</summary>
    public int Generation { get; private set; }

    /// <summary>This process's id in the job: its rank in generation 0. Stable across generations.</summary>
    public int MemberId { get; }

    /// <summary>The member ids of this generation; a member's rank is its index.</summary>
    public IReadOnlyList<int> Members { get; private set; }

    /// <summary>The collectives of this generation. Replaced by <see cref="Recover"/>: do not keep it across one.</summary>
    public TcpProcessGroup Group => _group ?? throw new ObjectDisposedException(nameof(ElasticGroup));

    /// <summary>This member's rank in the current generation; null once it left (or the group is closed).</summary>
    public int? Rank => _group?.Rank;

    /// <summary>The settings this group was made with.</summary>
    public ElasticOptions Options => _options;

    /// <summary>Every change of membership this process went through, oldest first.</summary>
    public IReadOnlyList<MembershipEvent> Events => _events;

    private ElasticGroup(IStore store, int memberId, ElasticOptions options, TcpProcessGroup group, int[] members)
    {
        (_store, MemberId, _options, _group, Members) = (store, memberId, options, group, members);
        // Gone from the store the moment this process dies (the kernel closes its store connection): the quorum
        // then waits for it no longer than for a member a survivor reported lost.
        store.SetEphemeral(AliveKey(memberId), [1]);
    }

    private string AliveKey(int member) => $"{_options.Prefix}/alive/{member.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Whether member <paramref name="member"/>'s process is gone: its ephemeral key has left the store.</summary>
    private bool Dead(int member)
    {
        try
        {
            _store.Get(AliveKey(member), TimeSpan.Zero);
            return false;
        }
        catch (TimeoutException)
        {
            return true;
        }
    }

    /// <summary>Generation 0: <paramref name="size"/> members with ids 0..size−1, this one <paramref name="memberId"/>,
    /// rendezvousing through <paramref name="store"/>.</summary>
    public static ElasticGroup Start(IStore store, int memberId, int size, ElasticOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        options ??= new ElasticOptions();
        // Joiners number themselves from here on (ids size, size+1, ...).
        store.Set($"{options.Prefix}/size", Encoding.UTF8.GetBytes(size.ToString(CultureInfo.InvariantCulture)));
        var group = TcpProcessGroup.Connect(store, memberId, size, options.Tcp, prefix: $"{options.Prefix}/g0");
        return new ElasticGroup(store, memberId, options, group, Enumerable.Range(0, size).ToArray());
    }

    /// <summary>Generation 0 of the job a launcher started (the torchrun variables, as <see cref="ProcessGroups"/>
    /// reads them): each rank's member id is its RANK. The store is rank 0's unless the launcher hosts it
    /// (<c>hpcengine launch --elastic</c>: then the job survives rank 0 too). The group owns the store
    /// connection.</summary>
    public static ElasticGroup InitFromEnvironment(ElasticOptions? options = null)
    {
        var env = DistributedEnvironment.Resolve();
        options ??= new ElasticOptions();
        var tcp = options.Tcp;
        if (tcp.JobId == null && env.JobId != null)
            options = options with { Tcp = tcp with { JobId = env.JobId } };
        var store = TcpStore.Create(
            env.MasterAddr,
            env.MasterPort,
            isServer: env.Rank == 0 && !DistributedEnvironment.StoreHostedByLauncher(),
            new StoreOptions { Token = options.Tcp.Token, JobId = options.Tcp.JobId },
            options.Tcp.ConnectTimeout
        );
        try
        {
            var g = DistributedEnvironment.JoinsElasticJob()
                ? Join(store, options)
                : Start(store, env.Rank, env.WorldSize, options);
            g._ownedStore = store;
            return g;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>Forms the next generation with the survivors, after this generation's group failed. Blocks until the
    /// quorum closes and the new group is connected; returns what changed. Throws
    /// <see cref="RemovedFromJobException"/> when the others went on without this process, and
    /// <see cref="CollectiveException"/> when fewer than <see cref="ElasticOptions.MinSize"/> survived.</summary>
    public MembershipEvent Recover()
    {
        var clock = Stopwatch.StartNew();
        var old = Members;
        int? suspect = _group?.FailedPeer is { } r ? old[r] : null;
        _group?.Dispose(); // a failed group aborts its links; a healthy one (a voluntary re-form) says goodbye
        _group = null;
        int next = Generation + 1;
        string p = Key(next);
        long order = _store.Add($"{p}/arrivals", 1);
        _store.Set($"{p}/slot/{order}", Encoding.UTF8.GetBytes($"{MemberId}|{suspect ?? -1}"));
        if (order == 1)
            CloseQuorum(p, old);
        var members = Ids(_store.Get($"{p}/members", _options.QuorumTimeout + TimeSpan.FromSeconds(30)));
        var left = Leavers(p);
        if (!members.Contains(MemberId))
            throw new RemovedFromJobException(
                $"elastic: generation {next} was formed without member {MemberId} (members {string.Join(", ", members)}): "
                    + "this process was frozen, cut off, or arrived after the quorum closed; it must stop"
            );
        if (members.Length < _options.MinSize)
            throw new CollectiveException(
                $"elastic: only {members.Length} member(s) survived into generation {next} ({string.Join(", ", members)}), "
                    + $"fewer than the minimum of {_options.MinSize}; resume from the last checkpoint"
            );
        _group = TcpProcessGroup.Connect(
            _store,
            Array.IndexOf(members, MemberId),
            members.Length,
            _options.Tcp,
            prefix: p
        );
        Generation = next;
        Members = members;
        var lost = old.Except(members).Except(left).ToArray();
        var e = new MembershipEvent(next, lost, left, members.Length, clock.Elapsed.TotalMilliseconds);
        _events.Add(e);
        return e;
    }

    private volatile bool _leaveRequested;

    /// <summary>Whether <see cref="RequestLeave"/> was called: the training loop leaves at its next step boundary.</summary>
    public bool LeaveRequested => _leaveRequested;

    /// <summary>Asks this member to leave at the next step boundary (safe from a signal handler: it only sets a
    /// flag). A spot machine's reclaim notice (SIGTERM) does this.</summary>
    public void RequestLeave() => _leaveRequested = true;

    /// <summary>Leaves the job on purpose (a spot machine's reclaim warning): tells the next generation not to wait
    /// for this member, then closes the links cleanly. The others' next op fails at once and they re-form without
    /// waiting out a timeout. Call it between steps, not inside one.</summary>
    public void Leave()
    {
        string p = Key(Generation + 1);
        long k = _store.Add($"{p}/leavers", 1);
        _store.Set($"{p}/leaver/{k}", Encoding.UTF8.GetBytes(MemberId.ToString(CultureInfo.InvariantCulture)));
        _group?.Dispose();
        _group = null;
    }

    /// <summary>Closes this generation's group (and the store connection it opened itself).</summary>
    public void Dispose()
    {
        _group?.Dispose();
        _group = null;
        _ownedStore?.Dispose();
        _ownedStore = null;
    }

    private string Key(int generation) => $"{_options.Prefix}/g{generation.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>As the first to arrive: waits for the others (see the class summary), then writes the member list.</summary>
    private void CloseQuorum(string p, IReadOnlyList<int> old)
    {
        var deadline = DateTime.UtcNow + _options.QuorumTimeout;
        var arrived = new SortedSet<int>();
        var suspects = new HashSet<int>();
        long seen = 0;
        DateTime? accountedSince = null;
        var nextDeadCheck = DateTime.UtcNow;
        while (true)
        {
            long count = _store.Add($"{p}/arrivals", 0);
            for (long k = seen + 1; k <= count; k++)
            {
                var parts = Encoding.UTF8.GetString(_store.Get($"{p}/slot/{k}", TimeSpan.FromSeconds(10))).Split('|');
                arrived.Add(int.Parse(parts[0], CultureInfo.InvariantCulture));
                if (int.Parse(parts[1], CultureInfo.InvariantCulture) is >= 0 and var s)
                    suspects.Add(s);
            }
            seen = count;
            var left = Leavers(p);
            // Members no survivor reported, whose process is gone (two lost at once: each survivor reports only the
            // first failed link), count as reported. Checked every 50 ms, not every pass.
            if (DateTime.UtcNow >= nextDeadCheck)
            {
                foreach (var id in old)
                    if (!arrived.Contains(id) && !left.Contains(id) && !suspects.Contains(id) && Dead(id))
                        suspects.Add(id);
                nextDeadCheck = DateTime.UtcNow + TimeSpan.FromMilliseconds(50);
            }
            if (old.All(id => arrived.Contains(id) || left.Contains(id)))
                break;
            var now = DateTime.UtcNow;
            if (old.All(id => arrived.Contains(id) || left.Contains(id) || suspects.Contains(id)))
            {
                accountedSince ??= now;
                if (now - accountedSince >= _options.SuspectGrace)
                    break;
            }
            if (now >= deadline)
                break;
            Thread.Sleep(5);
        }
        var list = Encoding.UTF8.GetBytes(
            string.Join(",", arrived.Select(i => i.ToString(CultureInfo.InvariantCulture)))
        );
        _store.CompareSet($"{p}/members", [], list);
    }

    private int[] Leavers(string p)
    {
        long n = _store.Add($"{p}/leavers", 0);
        var ids = new int[n];
        for (long k = 1; k <= n; k++)
            ids[k - 1] = int.Parse(
                Encoding.UTF8.GetString(_store.Get($"{p}/leaver/{k}", TimeSpan.FromSeconds(10))),
                CultureInfo.InvariantCulture
            );
        return ids;
    }

    private static int[] Ids(byte[] csv) =>
        Encoding
            .UTF8.GetString(csv)
            .Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(s => int.Parse(s, CultureInfo.InvariantCulture))
            .ToArray();
}
