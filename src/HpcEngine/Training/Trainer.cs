using HpcEngine.Data;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Training;

/// <summary>Supervised training on an image dataset, in one process or data-parallel over a process group: the entry
/// point the CLI, the benchmarks and embedding tools share. Deterministic for a fixed seed and kernel thread count
/// (the CPU kernels partition work statically), which is what exact resume relies on. The parts live in their own
/// files: <see cref="TrainingRun"/> (what a config builds), <see cref="TrainingLoop"/>, <see cref="Evaluation"/>,
/// <see cref="CheckpointWriter"/>, <see cref="GraphedTraining"/>, <see cref="RunMetrics"/>.</summary>
public static class Trainer
{
    /// <summary>Builds the optimizer a config names over <paramref name="parameters"/>.</summary>
    public static Optimizer MakeOptimizer(TrainConfig c, IEnumerable<Tensor> parameters)
    {
        ArgumentNullException.ThrowIfNull(c);
        return c.Optimizer switch
        {
            OptimizerKind.Sgd => new Sgd(parameters, c.Lr, c.Momentum, weightDecay: c.WeightDecay),
            OptimizerKind.Adam => new Adam(parameters, c.Lr, weightDecay: c.WeightDecay),
            OptimizerKind.AdamW => new AdamW(parameters, c.Lr, weightDecay: c.WeightDecay == 0 ? 0.01 : c.WeightDecay),
            _ => throw new TrainConfigException(
                nameof(TrainConfig.Optimizer),
                $"unknown {{Optimizer}} '{c.Optimizer}'"
            ),
        };
    }

    /// <summary>Trains per <paramref name="config"/>; <paramref name="log"/> receives the progress lines (a
    /// <see cref="LineObserver"/>), <paramref name="observers"/> the run's events. With a <paramref name="group"/>,
    /// training is data-parallel (the config's strategy): each rank takes its shard of every epoch with
    /// <c>BatchSize</c> samples per step (the global batch is BatchSize × ranks); rank 0 logs, evaluates and
    /// checkpoints, and only rank 0's observers hear of progress, evaluations and epochs (every rank's hear of steps).
    /// <see cref="TrainConfig.TraceDir"/> and <see cref="TrainConfig.Straggler"/> attach a <see cref="TraceObserver"/>
    /// and a <see cref="StragglerObserver"/>.</summary>
    public static TrainResult Run(
        TrainConfig config,
        Dataset train,
        Dataset test,
        string dataSource,
        Action<string>? log = null,
        IProcessGroup? group = null,
        IEnumerable<ITrainingObserver>? observers = null
    ) => RunWith(config, train, test, dataSource, log, group, observers, null);

    private static TrainResult RunWith(
        TrainConfig config,
        Dataset train,
        Dataset test,
        string dataSource,
        Action<string>? log,
        IProcessGroup? group,
        IEnumerable<ITrainingObserver>? observers,
        Distributed.Elastic.ElasticGroup? elastic
    )
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        config.Validate();
        int rank = group?.Rank ?? 0;
        bool lead = rank == 0;
        var watchers = new List<ITrainingObserver>();
        // An elastic run's rank 0 can change: every member gets the line observer, and only the current rank 0 is told.
        if (log != null && (lead || elastic != null))
            watchers.Add(new LineObserver(log));
        watchers.AddRange(observers ?? []);
        var trace = config.TraceDir != null ? new TraceObserver(rank, config.TraceDir) : null;
        if (trace != null)
            watchers.Add(trace);
        double slow = StragglerObserver.FactorFor(rank, group?.Size ?? 1, config.Straggler);
        if (slow > 1)
            watchers.Add(new StragglerObserver(slow, trace));
        if (config.CudaGraph && (group is { Size: > 1 } || slow > 1))
            throw new TrainConfigException(
                nameof(TrainConfig.CudaGraph),
                "{CudaGraph} trains one process (no {Strategy} across ranks, no {Straggler} emulation)"
            );
        var told = new RunObservers(watchers, () => elastic != null ? elastic.Rank == 0 : lead);
        try
        {
            TrainResult result;
            if (config.Elastic && elastic == null)
                throw new TrainConfigException(
                    nameof(TrainConfig.Elastic),
                    "{Elastic} runs through Trainer.RunElastic, with the ElasticGroup it recovers through"
                );
            using (var run = new TrainingRun(config, train, group, told, elastic))
                result = new TrainingLoop(run, test).Run(dataSource);
            told.Finished(null);
            return result;
        }
        catch (Exception e)
        {
            told.Finished(e);
            throw;
        }
    }

    /// <summary>As <see cref="Run"/>, data-parallel over an elastic group that survives lost members: the config
    /// must have <see cref="TrainConfig.Elastic"/> (see there for what it supports); the result carries the membership
    /// record (<see cref="TrainResult.Elastic"/>). A rank that the others went on without throws
    /// <see cref="Distributed.Elastic.RemovedFromJobException"/>.</summary>
    public static TrainResult RunElastic(
        TrainConfig config,
        Dataset train,
        Dataset test,
        string dataSource,
        Distributed.Elastic.ElasticGroup elastic,
        Action<string>? log = null,
        IEnumerable<ITrainingObserver>? observers = null
    )
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(elastic);
        if (!config.Elastic)
            throw new TrainConfigException(nameof(TrainConfig.Elastic), "RunElastic needs a config with {Elastic} set");
        return RunWith(config, train, test, dataSource, log, elastic.Group, observers, elastic);
    }

    /// <summary>The slow-down factor a straggler spec ("rank:factor", e.g. "1:1.5") sets for <paramref name="rank"/>
    /// (1 when the spec is null or empty, or for other ranks).</summary>
    public static double StragglerFactor(int rank, string? spec) =>
        StragglerObserver.FactorFor(rank, int.MaxValue, spec);

    /// <summary>As <see cref="StragglerFactor(int, string?)"/>, and an error when the spec names a rank that a world of
    /// <paramref name="worldSize"/> does not have (a straggler that would silently not be applied).</summary>
    public static double StragglerFactor(int rank, int worldSize, string? spec) =>
        StragglerObserver.FactorFor(rank, worldSize, spec);

    /// <summary>Accuracy (overall and per class) of <paramref name="model"/> in eval mode; the model's mode is
    /// restored.</summary>
    public static (double Accuracy, double[] PerClass) Evaluate(Module model, Dataset data, int batchSize = 1000) =>
        Evaluation.Accuracy(model, data, batchSize);
}
