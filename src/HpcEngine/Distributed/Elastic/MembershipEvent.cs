namespace HpcEngine.Distributed.Elastic;

/// <summary>What changed between two generations of an elastic group.</summary>
/// <param name="Generation">The generation this event started.</param>
/// <param name="Lost">Member ids of the last generation that did not make it into this one (dead, frozen, cut off or
/// too late).</param>
/// <param name="Left">Member ids that left on their own (<see cref="ElasticGroup.Leave"/>).</param>
/// <param name="WorldSizeAfter">Ranks in the new generation.</param>
/// <param name="RecoveryMilliseconds">From the start of the recovery on this rank to the new group being connected.</param>
public sealed record MembershipEvent(
    int Generation,
    IReadOnlyList<int> Lost,
    IReadOnlyList<int> Left,
    int WorldSizeAfter,
    double RecoveryMilliseconds
)
{
    /// <summary>Member ids that joined in this generation.</summary>
    public IReadOnlyList<int> Joined { get; init; } = [];
}
