using System.Diagnostics;
using System.Globalization;
using System.Text;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Distributed.Elastic;

/// <summary>Joining a running job: a new process registers in the store and waits; the members look for joiners at
/// step boundaries (<see cref="PendingJoiners"/>, read by rank 0 and broadcast, so all agree), and admit them together
/// (<see cref="Admit"/>): a new generation of the members plus the joiners, formed without a quorum (everyone is
/// alive and at the same step). The joiner then receives its state from rank 0 over the new group (live recovery).</summary>
public sealed partial class ElasticGroup
{
    private long _admitted;

    /// <summary>True for a process that joined after generation 0 and has not yet received the job's state.</summary>
    public bool AwaitsState { get; set; }

    /// <summary>Joiners admitted so far (carried to joiners with the state, so every member counts alike).</summary>
    public long Admitted
    {
        get => _admitted;
        set => _admitted = value;
    }

    /// <summary>Joins the running job behind <paramref name="store"/>: takes the next free member id, registers, and
    /// blocks until the members admit it (at most <paramref name="wait"/>, 10 minutes by default).</summary>
    public static ElasticGroup Join(IStore store, ElasticOptions? options = null, TimeSpan? wait = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        options ??= new ElasticOptions();
        var limit = wait ?? TimeSpan.FromMinutes(10);
        string p = options.Prefix;
        int size = int.Parse(Encoding.UTF8.GetString(store.Get($"{p}/size", limit)), CultureInfo.InvariantCulture);
        int id = size - 1 + (int)store.Add($"{p}/ids", 1);
        long k = store.Add($"{p}/joiners", 1);
        store.Set($"{p}/joiner/{k}", Encoding.UTF8.GetBytes(id.ToString(CultureInfo.InvariantCulture)));
        int generation = WaitForAdmission(store, p, id, limit);
        string gp = $"{p}/g{generation.ToString(CultureInfo.InvariantCulture)}";
        var members = Ids(store.Get($"{gp}/members", TimeSpan.FromSeconds(30)));
        var group = TcpProcessGroup.Connect(store, Array.IndexOf(members, id), members.Length, options.Tcp, prefix: gp);
        var g = new ElasticGroup(store, id, options, group, members) { Generation = generation, AwaitsState = true };
        g._events.Add(new MembershipEvent(generation, [], [], members.Length, 0) { Joined = [id] });
        return g;
    }

    /// <summary>Waits in one-second slices for the members to admit member <paramref name="id"/>, giving up when the
    /// job has finished (<see cref="MarkFinished"/>) or after <paramref name="limit"/>.</summary>
    private static int WaitForAdmission(IStore store, string p, int id, TimeSpan limit)
    {
        var deadline = DateTime.UtcNow + limit;
        while (true)
        {
            try
            {
                return int.Parse(
                    Encoding.UTF8.GetString(store.Get($"{p}/admitted/{id}", TimeSpan.FromSeconds(1))),
                    CultureInfo.InvariantCulture
                );
            }
            catch (TimeoutException) when (DateTime.UtcNow < deadline)
            {
                if (store.Add($"{p}/finished", 0) > 0)
                    throw new RemovedFromJobException(
                        $"elastic: the job finished before member {id} was admitted: there is nothing left to join"
                    );
            }
            catch (TimeoutException e)
            {
                throw new TimeoutException(
                    $"elastic: member {id} registered to join but was not admitted within {limit.TotalSeconds:F0}s: is "
                        + "the job still running, and elastic?",
                    e
                );
            }
        }
    }

    /// <summary>Says the job's training is over, so processes still waiting to join stop waiting.</summary>
    public void MarkFinished() => _store.Add($"{_options.Prefix}/finished", 1);

    /// <summary>How many processes have registered to join so far (a store read: call it on one rank and share the
    /// answer, or the members may disagree).</summary>
    public long PendingJoiners() => _store.Add($"{_options.Prefix}/joiners", 0);

    /// <summary>Every member calls it at the same step with the same <paramref name="registered"/> count (from
    /// <see cref="PendingJoiners"/> on rank 0): admits the joiners registered since the last admission into a new
    /// generation (members first, joiners after), and returns what changed.</summary>
    public MembershipEvent Admit(long registered)
    {
        var clock = Stopwatch.StartNew();
        var joiners = new List<int>();
        for (long k = _admitted + 1; k <= registered; k++)
            joiners.Add(
                int.Parse(
                    Encoding.UTF8.GetString(_store.Get($"{_options.Prefix}/joiner/{k}", TimeSpan.FromSeconds(30))),
                    CultureInfo.InvariantCulture
                )
            );
        int next = Generation + 1;
        string p = Key(next);
        var members = Members.Concat(joiners).ToArray();
        if (Rank == 0)
        {
            _store.CompareSet($"{p}/members", [], Encoding.UTF8.GetBytes(string.Join(",", members)));
            foreach (var id in joiners)
                _store.Set(
                    $"{_options.Prefix}/admitted/{id}",
                    Encoding.UTF8.GetBytes(next.ToString(CultureInfo.InvariantCulture))
                );
        }
        members = Ids(_store.Get($"{p}/members", TimeSpan.FromSeconds(30)));
        _group?.Dispose();
        _group = TcpProcessGroup.Connect(
            _store,
            Array.IndexOf(members, MemberId),
            members.Length,
            _options.Tcp,
            prefix: p
        );
        Generation = next;
        Members = members;
        _admitted = registered;
        var e = new MembershipEvent(next, [], [], members.Length, clock.Elapsed.TotalMilliseconds) { Joined = joiners };
        _events.Add(e);
        return e;
    }
}
