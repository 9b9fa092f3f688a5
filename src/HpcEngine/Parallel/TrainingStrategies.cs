using System.Globalization;
using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Parallel;

/// <summary>Builds strategies from their names: sync, zero1, ssp:K, ssp:inf, localsgd:H, diloco:H.</summary>
public static class TrainingStrategies
{
    /// <summary>The strategies this factory builds, with their parameters.</summary>
    public const string Known = StrategySpec.Grammar;

    /// <param name="spec">sync, zero1, ssp:K, ssp:inf, ssp:K:S (the last S ranks are dedicated servers), localsgd:H or
    /// diloco:H.</param> <param name="model">This rank's replica.</param> <param name="group">The ranks that train
    /// together.</param> <param name="makeOptimizer">Builds the optimizer over the parameters it is given (zero1 and
    /// ssp pass a shard).</param> <param name="codec">Gradient compression: sync compresses the gradient buckets,
    /// localsgd and diloco the pseudo-gradients they average; zero1 and ssp reject one.</param> <param
    /// name="elastic">Keep what elastic recovery needs: zero1 copies each shard's state to the next rank, and so does
    /// ssp at its commit points.</param> <param name="commitSteps">ssp under <paramref name="elastic"/>: steps between
    /// commit points.</param>
    public static ITrainingStrategy Create(
        string spec,
        Module model,
        IProcessGroup group,
        Func<IEnumerable<Tensor>, Optimizer> makeOptimizer,
        Compression.GradientCodec? codec = null,
        bool elastic = false,
        int commitSteps = DefaultCommitSteps
    ) => Create(StrategySpec.Parse(spec), model, group, makeOptimizer, codec, elastic, commitSteps);

    /// <summary>Steps between an elastic parameter server's commit points unless the caller says.</summary>
    public const int DefaultCommitSteps = 20;

    /// <summary>Builds the strategy <paramref name="spec"/> describes (see the string overload).</summary>
    public static ITrainingStrategy Create(
        StrategySpec spec,
        Module model,
        IProcessGroup group,
        Func<IEnumerable<Tensor>, Optimizer> makeOptimizer,
        Compression.GradientCodec? codec = null,
        bool elastic = false,
        int commitSteps = DefaultCommitSteps
    )
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(makeOptimizer);
        if (codec != null && !spec.AcceptsCodec)
            throw new ArgumentException(
                $"compression ({codec.Name}) composes with sync, localsgd and diloco, not with '{spec}'"
            );
        if (spec.DedicatedServers >= group.Size)
            throw new ArgumentException(
                $"strategy '{spec}': the dedicated server count must be between 1 and {group.Size - 1} (the group has "
                    + $"{group.Size} ranks)"
            );
        return spec.Kind switch
        {
            StrategyKind.Sync => new SyncStrategy(model, group, makeOptimizer(model.Parameters()), codec),
            StrategyKind.Zero1 => new Zero1Strategy(model, group, makeOptimizer, buddyCopies: elastic),
            StrategyKind.ParameterServer => new ParameterServerStrategy(
                model,
                group,
                makeOptimizer,
                spec.StalenessBound,
                spec.DedicatedServers,
                elastic ? commitSteps : 0
            ),
            // Local SGD is the outer step of DiLoCo with learning rate 1 and no momentum: θ ← θ_start − avg(θ_start −
            // θ_local) = avg(θ_local); going through the pseudo-gradient lets a codec compress what is averaged.
            StrategyKind.LocalSgd => new DiLoCoStrategy(
                model,
                group,
                makeOptimizer(model.Parameters()),
                spec.Period,
                outerLr: 1,
                outerMomentum: 0,
                codec,
                name: spec.ToString()
            ),
            _ => new DiLoCoStrategy(model, group, makeOptimizer(model.Parameters()), spec.Period, codec: codec),
        };
    }

    /// <summary>Broadcasts rank 0's parameters and buffers so every replica starts equal.</summary>
    internal static void BroadcastFromRankZero(Module model, IProcessGroup group)
    {
        using var noGrad = GradMode.NoGrad();
        var works = model
            .StateDict()
            .Select(kv => kv.Value)
            .Where(t => t.DType.IsFloating())
            .Select(t => group.Broadcast(t))
            .ToArray();
        foreach (var w in works)
            w.Wait();
    }
}
