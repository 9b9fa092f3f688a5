using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using HpcEngine.Distributed;
using HpcEngine.Parallel;

namespace HpcEngine.Training;

/// <summary>What an elastic run does when a member is lost (<see cref="TrainConfig.Elastic"/>): the survivors form
/// the next generation (<see cref="Distributed.Elastic.ElasticGroup.Recover"/>), go back to their last commit point
/// (the last step whose exchange they finished; under local SGD / DiLoCo the last outer step, so the window's local
/// steps are redone; under ssp the last commit point), rebuild the strategy over the new group, take the model, optimizer and strategy state, step and
/// data position of the member whose commit point is furthest on (live recovery: over the group, no disk), and go on
/// from there with the epoch's remaining samples dealt over the new world size. A rank that finished the failed
/// exchange and one that did not both end with that member's state; per-rank codec state (residuals) stays with each
/// survivor and is lost with the lost one, which the events record. Records the events, the samples committed and,
/// at the end, whether every replica holds the same parameters.</summary>
internal sealed class ElasticTraining(TrainingRun run)
{
    private readonly List<MembershipSummary> _events = [];
    private long _samplesSeen,
        _pendingSamples;

    // The last commit point (a step every member finished, or an outer step of local SGD / DiLoCo): samples since the
    // run's start, the step, and the strategy's state then (what a rollback restores).
    private long _commitGlobal,
        _commitStep;
    private (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Scalars)? _committedState;

    /// <summary>Where the run starts (or a joiner enters): the first commit point.</summary>
    public void Begin(int epoch, int position, long step) => MarkCommit(Global(epoch, position), step);

    /// <summary>After each step: its samples over all ranks; when the strategy says the step ended at a commit point,
    /// the samples since the last one count as seen and the point is recorded.</summary>
    public void Stepped(int epoch, int position, long step, int globalSamples)
    {
        _pendingSamples += globalSamples;
        if (run.Strategy is { StepCommitted: false })
            return;
        _samplesSeen += _pendingSamples;
        _pendingSamples = 0;
        MarkCommit(Global(epoch, position), step);
    }

    /// <summary>At the end of an epoch's steps: a strategy with windows of local steps exchanges now (so that a window
    /// never spans an epoch and a rollback stays inside it).</summary>
    public void EndOfEpoch(int epoch, int position, long step)
    {
        if (run.Strategy is not { CommitsEveryStep: false } strategy)
            return;
        strategy.Commit();
        Stepped(epoch, position, step, 0);
    }

    /// <summary>Whether joiners are looked for after this step: at commit points only (every member's replica equal),
    /// every <see cref="Distributed.Elastic.ElasticOptions.JoinCheckSteps"/> steps for strategies that commit each
    /// step.</summary>
    public bool JoinCheckDue(long step) =>
        run.Strategy switch
        {
            { StepCommitted: false } => false,
            { CommitsEveryStep: false } => true,
            _ => step % run.Elastic!.Options.JoinCheckSteps == 0,
        };

    private long Global(int epoch, int position) =>
        epoch * run.Loader.DatasetSize + Math.Min(position, run.Loader.DatasetSize);

    private void MarkCommit(long global, long step)
    {
        (_commitGlobal, _commitStep) = (global, step);
        if (run.Strategy is not { PartitionsOptimizer: false } strategy)
            return; // zero1 keeps its own versions of its shard (and its neighbour's)
        DisposeCommitted();
        _committedState = strategy.StateDict(); // empty for sync without a codec
    }

    private void DisposeCommitted()
    {
        if (_committedState is { } old)
            foreach (var t in old.Tensors.Values)
                t.Dispose();
        _committedState = null;
    }

    /// <summary>This rank's strategy back at the last commit point (its local steps since undone, a codec's residuals as
    /// they were before the failed exchange).</summary>
    private void RollBack()
    {
        if (_committedState is { } state && run.Strategy is { } strategy)
            strategy.LoadStateDict(state.Tensors, state.Scalars);
    }

    /// <summary>The member whose last commit point is furthest on (the lowest rank among equals): the others take its
    /// state. A rank that finished the failed exchange holds a later point than one that did not; both are
    /// consistent.</summary>
    private (int Root, long Global) MostAdvanced(IProcessGroup group)
    {
        var key = new[] { _commitGlobal * group.Size + (group.Size - 1 - group.Rank) };
        group.AllReduce<long>(key, new AllReduceOptions { Op = ReduceOp.Max });
        return (group.Size - 1 - (int)(key[0] % group.Size), key[0] / group.Size);
    }

    /// <summary>After <see cref="TrainingRun.Regroup"/>: a partitioned optimizer state (zero1's) re-partitioned over
    /// the new group from every member's export (<paramref name="mine"/>; a joiner has none).</summary>
    private void Repartition(int root, ShardedState? mine)
    {
        if (run.Strategy is { PartitionsOptimizer: true } strategy)
            strategy.ImportShards(run.Group!, root, mine);
        else if (mine != null) // down to one rank: a plain optimizer over every parameter
            Zero1Strategy.ImportWhole(run.Group!, root, mine, run.Optimizer, run.Model.Parameters().ToArray());
    }

    /// <summary>Whether <paramref name="e"/> is a collective failing because a member was lost.</summary>
    public static bool IsLostMember(Exception e) =>
        e switch
        {
            CollectiveException => true,
            AggregateException a => a.InnerExceptions.Any(IsLostMember),
            _ => e.InnerException != null && IsLostMember(e.InnerException),
        };

    /// <summary>Re-forms the group and the run over it: every rank rolls back to its last commit point, and all take
    /// the state of the member whose point is furthest on. Returns the position in <paramref name="epoch"/> to go on
    /// from and sets the step (both that member's). Positions compare as samples since the run's start, so a rank at
    /// the end of epoch e (in its evaluation) and one at the start of e+1 agree.</summary>
    public int Recover(int epoch, out long newStep)
    {
        long n = run.Loader.DatasetSize;
        long global = _commitGlobal;
        var clock = Stopwatch.StartNew();
        var elastic = run.Elastic!;
        var change = elastic.Recover();
        bool hadPerRankState = _committedState?.Tensors.Keys.Any(run.Strategy!.IsPerRankState) ?? false;
        var (rootRank, furthest) = MostAdvanced(elastic.Group);
        using var shards =
            run.Strategy?.PartitionsOptimizer == true
                ? run.Strategy.ExportShards(advance: furthest > _commitGlobal)
                : null;
        RollBack();
        run.Regroup();
        Repartition(rootRank, shards);
        var root = StateBroadcast.Run(run.Group!, rootRank, run.Model, run.Optimizer, Scalars(), run.Strategy);
        elastic.Admitted = Math.Max(elastic.Admitted, long.Parse(root["admitted"], CultureInfo.InvariantCulture));
        long rootGlobal = long.Parse(root["global"], CultureInfo.InvariantCulture);
        if (rootGlobal < epoch * n || rootGlobal > (epoch + 1) * n)
            throw new Distributed.Elastic.ElasticStateLostException(
                $"elastic: after the loss the new rank 0 stands at sample {rootGlobal} of the run and this rank at "
                    + $"{global}, more than an epoch boundary apart; resume from the last checkpoint"
            );
        long resumed = long.Parse(root["step"], CultureInfo.InvariantCulture);
        newStep = resumed;
        _samplesSeen = long.Parse(root["samples_seen"], CultureInfo.InvariantCulture);
        _pendingSamples = 0;
        MarkCommit(rootGlobal, resumed);
        double ms = clock.Elapsed.TotalMilliseconds;
        var dropped = Dropped(hadPerRankState);
        foreach (var id in change.Lost)
            _events.Add(new MembershipSummary(resumed, "lost", id, change.WorldSizeAfter, ms) { Dropped = dropped });
        foreach (var id in change.Left)
            _events.Add(new MembershipSummary(resumed, "left", id, change.WorldSizeAfter, ms));
        Tell(resumed, change.Generation, change.WorldSizeAfter, change.Lost.Count + change.Left.Count);
        string who = string.Join(
            ", ",
            change.Lost.Select(i => $"member {i} lost").Concat(change.Left.Select(i => $"member {i} left"))
        );
        run.Observers.Lead(o =>
            o.OnMessage(
                $"elastic: {who}; generation {change.Generation} has {change.WorldSizeAfter} rank(s); recovered in {ms:F0} ms, "
                    + $"going on from step {resumed} ({Policy()})"
                    + (dropped != null ? $"; dropped with the lost: {string.Join(", ", dropped)}" : "")
            )
        );
        return (int)(rootGlobal - epoch * n);
    }

    /// <summary>What a lost member takes with it beyond its replica: its codec's error-feedback state, and under local
    /// SGD / DiLoCo its local steps since the last outer step (the survivors redo theirs from that point).</summary>
    private string[]? Dropped(bool perRankState)
    {
        var what = new List<string>();
        if (perRankState)
            what.Add($"its {run.Config.CodecName} error-feedback state");
        if (run.Strategy is ParameterServerStrategy { CommitsEveryStep: false })
            what.Add("the steps since the last commit point (every survivor redoes its own)");
        else if (run.Strategy is { CommitsEveryStep: false })
            what.Add("its local steps since the last outer step");
        return what.Count > 0 ? what.ToArray() : null;
    }

    /// <summary>Every member's observers hear of the generation just formed (its last <paramref name="changes"/>
    /// events).</summary>
    private void Tell(long step, int generation, int worldSize, int changes)
    {
        var e = new GenerationEvent(step, generation, worldSize, _events.TakeLast(changes).ToArray());
        run.Observers.All(o => o.OnGeneration(e));
    }

    /// <summary>At a step boundary (every <see cref="Distributed.Elastic.ElasticOptions.JoinCheckSteps"/>): rank 0
    /// reads how many processes wait to join and tells the others; if any, all admit them, rebuild the run over the
    /// new generation and hand the joiners rank 0's state. Returns whether the world changed.</summary>
    public bool AdmitJoiners(int epoch, int position, long step)
    {
        var elastic = run.Elastic!;
        var registered = new[] { run.Lead ? elastic.PendingJoiners() : 0 };
        run.Group!.Broadcast<long>(registered, new BroadcastOptions { Root = 0 });
        if (registered[0] <= elastic.Admitted)
            return false;
        var clock = Stopwatch.StartNew();
        var change = elastic.Admit(registered[0]);
        using var shards = run.Strategy?.PartitionsOptimizer == true ? run.Strategy.ExportShards(advance: false) : null;
        run.Regroup();
        Repartition(0, shards);
        StateBroadcast.Run(run.Group!, 0, run.Model, run.Optimizer, Scalars(), run.Strategy);
        MarkCommit(Global(epoch, position), step);
        double ms = clock.Elapsed.TotalMilliseconds;
        foreach (var id in change.Joined)
            _events.Add(new MembershipSummary(step, "joined", id, change.WorldSizeAfter, ms));
        Tell(step, change.Generation, change.WorldSizeAfter, change.Joined.Count);
        run.Observers.Lead(o =>
            o.OnMessage(
                $"elastic: member(s) {string.Join(", ", change.Joined)} joined; generation {change.Generation} has "
                    + $"{change.WorldSizeAfter} rank(s); admitted in {ms:F0} ms at step {step}"
            )
        );
        return true;
    }

    /// <summary>For a process that joined a running job: receives rank 0's state and where the run stands (the epoch,
    /// the position in it, the step).</summary>
    public (int Epoch, int Position, long Step) ReceiveState()
    {
        var elastic = run.Elastic!;
        var clock = Stopwatch.StartNew();
        Repartition(0, null);
        var root = StateBroadcast.Run(run.Group!, 0, run.Model, run.Optimizer, Scalars(), run.Strategy);
        elastic.AwaitsState = false;
        elastic.Admitted = long.Parse(root["admitted"], CultureInfo.InvariantCulture);
        run.AdoptJob(
            int.Parse(root["initial_workers"], CultureInfo.InvariantCulture),
            long.Parse(root["schedule_steps"], CultureInfo.InvariantCulture)
        );
        _samplesSeen = long.Parse(root["samples_seen"], CultureInfo.InvariantCulture);
        long n = run.Loader.DatasetSize,
            global = long.Parse(root["global"], CultureInfo.InvariantCulture);
        long step = long.Parse(root["step"], CultureInfo.InvariantCulture);
        MarkCommit(global, step);
        _events.Add(
            new MembershipSummary(step, "joined", elastic.MemberId, run.Group!.Size, clock.Elapsed.TotalMilliseconds)
        );
        Tell(step, elastic.Generation, run.Group.Size, 1);
        run.Observers.All(o =>
            o.OnMessage(
                $"elastic: member {elastic.MemberId} joined as rank {run.Group.Rank} of {run.Group.Size} at step {step}"
            )
        );
        return ((int)(global / n), (int)(global % n), step);
    }

    /// <summary>Where this rank's last commit point stands, for the others to take.</summary>
    private Dictionary<string, string> Scalars() =>
        new()
        {
            ["step"] = _commitStep.ToString(CultureInfo.InvariantCulture),
            ["global"] = _commitGlobal.ToString(CultureInfo.InvariantCulture),
            ["samples_seen"] = _samplesSeen.ToString(CultureInfo.InvariantCulture),
            ["admitted"] = run.Elastic!.Admitted.ToString(CultureInfo.InvariantCulture),
            ["schedule_steps"] = run.Schedule.TotalSteps.ToString(CultureInfo.InvariantCulture),
            ["initial_workers"] = run.InitialWorkers.ToString(CultureInfo.InvariantCulture),
        };

    /// <summary>What the batch policy did: "batch 48 per worker, keep-global" or "lr × 0.67, keep-local".</summary>
    private string Policy() =>
        run.Config.ElasticBatch == ElasticBatch.KeepGlobal
            ? $"batch {run.LocalBatch} per worker, keep-global"
            : $"lr × {run.LrScale.ToString("0.###", CultureInfo.InvariantCulture)}, keep-local";

    /// <summary>The run's membership record; compares every replica's parameter hash over the group.</summary>
    public ElasticReport Report(int epochs)
    {
        var group = run.Group!;
        DisposeCommitted();
        if (run.Lead)
            run.Elastic!.MarkFinished();
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in run.Model.Parameters())
            sha.AppendData(p.AsByteMemory().Span);
        long hash = BitConverter.ToInt64(sha.GetHashAndReset(), 0);
        var max = new[] { hash };
        var min = new[] { hash };
        group.AllReduce<long>(max, new AllReduceOptions { Op = ReduceOp.Max });
        group.AllReduce<long>(min, new AllReduceOptions { Op = ReduceOp.Min });
        return new ElasticReport(_events, max[0] == min[0], _samplesSeen, (long)epochs * run.Loader.DatasetSize);
    }
}

/// <summary>One change of membership in an elastic run's results.</summary>
public sealed record MembershipSummary(
    [property: System.Text.Json.Serialization.JsonPropertyName("step")] long Step,
    [property: System.Text.Json.Serialization.JsonPropertyName("kind")] string Kind,
    [property: System.Text.Json.Serialization.JsonPropertyName("rank")] int Rank,
    [property: System.Text.Json.Serialization.JsonPropertyName("world_size_after")] int WorldSizeAfter,
    [property: System.Text.Json.Serialization.JsonPropertyName("recovery_ms")] double RecoveryMilliseconds
)
{
    /// <summary>For a lost member: what was lost with it beyond its replica (its codec's error-feedback state, its
    /// local steps since the last outer step); null when nothing was.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("dropped")]
    [System.Text.Json.Serialization.JsonIgnore(
        Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull
    )]
    public IReadOnlyList<string>? Dropped { get; init; }
}

/// <summary>An elastic run's membership record: the events, the samples committed over all ranks (the
/// DistributedSampler's end-of-epoch padding included) against the epochs' samples, and whether every replica ended
/// with the same parameters.</summary>
public sealed record ElasticReport(
    IReadOnlyList<MembershipSummary> Membership,
    bool ReplicaHashAgree,
    long SamplesSeen,
    long SamplesExpected
);
