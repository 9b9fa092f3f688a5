using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using HpcEngine.Distributed;
using HpcEngine.Parallel;

namespace HpcEngine.Training;

/// <summary>What an elastic run does when a member is lost (<see cref="TrainConfig.Elastic"/>): the survivors form
/// the next generation (<see cref="Distributed.Elastic.ElasticGroup.Recover"/>), rebuild the strategy over it, take the
/// new rank 0's model, optimizer state, step and data position (live recovery: over the group, no disk), and go on
/// from there with the epoch's remaining samples dealt over the new world size. The step that failed is not committed
/// anywhere it was not finished everywhere: a rank that applied it and one that did not both end with rank 0's state.
/// Records the events, the samples committed and, at the end, whether every replica holds the same parameters.</summary>
internal sealed class ElasticTraining(TrainingRun run)
{
    private readonly List<MembershipSummary> _events = [];
    private long _samplesSeen;

    /// <summary>A step's samples, over all ranks, once the step is committed.</summary>
    public void Committed(int globalSamples) => _samplesSeen += globalSamples;

    /// <summary>Whether <paramref name="e"/> is a collective failing because a member was lost.</summary>
    public static bool IsLostMember(Exception e) =>
        e switch
        {
            CollectiveException => true,
            AggregateException a => a.InnerExceptions.Any(IsLostMember),
            _ => e.InnerException != null && IsLostMember(e.InnerException),
        };

    /// <summary>Re-forms the group and the run over it; returns the position in <paramref name="epoch"/> to go on
    /// from and sets the step (both the new rank 0's). Positions compare as samples since the run's start, so a rank
    /// at the end of epoch e (in its evaluation) and one at the start of e+1 agree.</summary>
    public int Recover(int epoch, int position, long step, out long newStep)
    {
        long n = run.Loader.DatasetSize;
        long global = epoch * n + Math.Min(position, n);
        var clock = Stopwatch.StartNew();
        var elastic = run.Elastic!;
        var change = elastic.Recover();
        run.Regroup();
        var root = StateBroadcast.Run(
            run.Group!,
            0,
            run.Model,
            run.Optimizer,
            Scalars(epoch, position, step),
            run.Strategy
        );
        elastic.Admitted = Math.Max(elastic.Admitted, long.Parse(root["admitted"], CultureInfo.InvariantCulture));
        long rootGlobal = long.Parse(root["global"], CultureInfo.InvariantCulture);
        if (rootGlobal < epoch * n || rootGlobal > (epoch + 1) * n)
            throw new InvalidOperationException(
                $"elastic: after the loss the new rank 0 stands at sample {rootGlobal} of the run and this rank at "
                    + $"{global}, more than an epoch boundary apart; resume from the last checkpoint"
            );
        long resumed = long.Parse(root["step"], CultureInfo.InvariantCulture);
        newStep = resumed;
        _samplesSeen = long.Parse(root["samples_seen"], CultureInfo.InvariantCulture);
        double ms = clock.Elapsed.TotalMilliseconds;
        foreach (var id in change.Lost)
            _events.Add(new MembershipSummary(resumed, "lost", id, change.WorldSizeAfter, ms));
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
            )
        );
        return (int)(rootGlobal - epoch * n);
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
        run.Regroup();
        StateBroadcast.Run(run.Group!, 0, run.Model, run.Optimizer, Scalars(epoch, position, step), run.Strategy);
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
        var root = StateBroadcast.Run(run.Group!, 0, run.Model, run.Optimizer, Scalars(0, 0, 0), run.Strategy);
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

    private Dictionary<string, string> Scalars(int epoch, int position, long step)
    {
        long n = run.Loader.DatasetSize;
        return new Dictionary<string, string>
        {
            ["step"] = step.ToString(CultureInfo.InvariantCulture),
            ["global"] = (epoch * n + Math.Min(position, n)).ToString(CultureInfo.InvariantCulture),
            ["samples_seen"] = _samplesSeen.ToString(CultureInfo.InvariantCulture),
            ["admitted"] = run.Elastic!.Admitted.ToString(CultureInfo.InvariantCulture),
            ["schedule_steps"] = run.Schedule.TotalSteps.ToString(CultureInfo.InvariantCulture),
            ["initial_workers"] = run.InitialWorkers.ToString(CultureInfo.InvariantCulture),
        };
    }

    /// <summary>What the batch policy did: "batch 48 per worker, keep-global" or "lr × 0.67, keep-local".</summary>
    private string Policy() =>
        run.Config.ElasticBatch == ElasticBatch.KeepGlobal
            ? $"batch {run.LocalBatch} per worker, keep-global"
            : $"lr × {run.LrScale.ToString("0.###", CultureInfo.InvariantCulture)}, keep-local";

    /// <summary>The run's membership record; compares every replica's parameter hash over the group.</summary>
    public ElasticReport Report(int epochs)
    {
        var group = run.Group!;
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
);

/// <summary>An elastic run's membership record: the events, the samples committed over all ranks (the
/// DistributedSampler's end-of-epoch padding included) against the epochs' samples, and whether every replica ended
/// with the same parameters.</summary>
public sealed record ElasticReport(
    IReadOnlyList<MembershipSummary> Membership,
    bool ReplicaHashAgree,
    long SamplesSeen,
    long SamplesExpected
);
