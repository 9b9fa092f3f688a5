using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Distributed.Elastic;

/// <summary>Settings of an <see cref="ElasticGroup"/>.</summary>
public sealed record ElasticOptions
{
    /// <summary>The links of every generation. Their heartbeat and peer timeout are what detects a frozen or cut-off
    /// rank: by default a heartbeat every 0.5 s and a peer silent for 2 s counts as lost.</summary>
    public TcpOptions Tcp { get; init; } =
        new() { HeartbeatInterval = TimeSpan.FromMilliseconds(500), PeerTimeout = TimeSpan.FromSeconds(2) };

    /// <summary>How long the first survivor to arrive keeps the next generation open for the others. The quorum
    /// closes sooner, as soon as every member of the last generation has arrived, left, or been reported lost (and
    /// <see cref="SuspectGrace"/> has passed). A survivor that arrives after it closed is removed from the job.</summary>
    public TimeSpan QuorumTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a quorum that waits only on reported-lost members stays open (a reported peer may still be
    /// alive: a link can fail at one end first).</summary>
    public TimeSpan SuspectGrace { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>The smallest group worth continuing with; a quorum below it is an error for every survivor.</summary>
    public int MinSize { get; init; } = 1;

    /// <summary>Training checks for processes waiting to join every this many steps (rank 0 reads the store and
    /// broadcasts the count: one small collective per check).</summary>
    public int JoinCheckSteps { get; init; } = 5;

    /// <summary>The store's key prefix of the job's generations (several elastic jobs can share one store).</summary>
    public string Prefix { get; init; } = "elastic";
}
