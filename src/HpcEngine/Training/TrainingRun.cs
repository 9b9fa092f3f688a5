using HpcEngine.Data;
using HpcEngine.Distributed;
using HpcEngine.Distributed.Elastic;
using HpcEngine.NN;
using HpcEngine.Optim;
using HpcEngine.Parallel;

namespace HpcEngine.Training;

/// <summary>The parts of one training run, built from its config: the model on its device, the strategy (with
/// several ranks) and optimizer, this rank's data, the schedule and where the run starts. <see cref="TrainingLoop"/>
/// drives them.</summary>
internal sealed class TrainingRun : IDisposable
{
    private readonly Optimizer? _ownOptimizer;

    public TrainConfig Config { get; }
    public IProcessGroup? Group { get; private set; }
    public RunObservers Observers { get; }
    public Generator Generator { get; }
    public Module Model { get; }
    public Device Device { get; }

    /// <summary>With several ranks: what is communicated after each backward; null in one process.</summary>
    public ITrainingStrategy? Strategy { get; private set; }
    public Optimizer Optimizer { get; private set; }
    public DataLoader Loader { get; private set; }
    public CosineWithWarmup Schedule { get; private set; }

    /// <summary>A joiner takes the running job's schedule (its length was planned at the job's first world size, and
    /// every replica must step with the same rate).</summary>
    public void AdoptSchedule(long totalSteps) =>
        Schedule = new CosineWithWarmup(Config.Lr, totalSteps, Config.WarmupSteps);

    /// <summary>Ranks that train (a parameter server's dedicated server ranks do not).</summary>
    public int Workers { get; private set; }
    public long StepsPerEpoch { get; }
    public ResumePoint Start { get; }
    public CheckpointWriter Checkpoints { get; }

    /// <summary>The elastic membership this run follows (null: a lost rank ends the run).</summary>
    public ElasticGroup? Elastic { get; }

    private readonly Dataset _train;

    public int Rank => Group?.Rank ?? 0;
    public bool Lead => Group == null || Group.Rank == 0;
    public ParameterServerStrategy? Server => Strategy as ParameterServerStrategy;
    public DistributedDataParallel? Ddp => (Strategy as SyncStrategy)?.Ddp;

    public TrainingRun(
        TrainConfig config,
        Dataset train,
        IProcessGroup? group,
        RunObservers observers,
        ElasticGroup? elastic = null
    )
    {
        Config = config;
        Elastic = elastic;
        Group = elastic?.Group ?? group;
        group = Group;
        _train = train;
        Observers = observers;
        Generator = new Generator(config.Seed);
        Model = Models.Create(config.Model, Generator, train.SampleShape, train.Classes);
        try
        {
            Device = config.Device;
            // Before the optimizer, whose state is created where the parameters are, and before DDP.
            if (Device.Type != DeviceType.Cpu)
                Model.To(Device);
            Strategy = CreateStrategy(config, Model, group);
            if (Strategy == null && (config.Strategy != StrategySpec.Sync || config.Compress != null))
                throw new TrainConfigException(
                    config.Compress != null ? nameof(config.Compress) : nameof(config.Strategy),
                    $"{{Strategy}} {config.Strategy}{(config.Compress != null ? $" and {{Compress}} {config.Compress}" : "")} need several ranks (run under hpcengine launch, mpirun or srun): in one process they would have no effect"
                );
            Workers = Server?.Workers ?? group?.Size ?? 1;
            _ownOptimizer = Strategy == null ? Trainer.MakeOptimizer(config, Model.Parameters()) : null;
            Optimizer = Strategy?.Optimizer ?? _ownOptimizer!;
            InitialWorkers = Workers;
            Loader = MakeLoader();
            StepsPerEpoch = (Loader.BatchesPerEpoch + config.GradAccumulation - 1) / config.GradAccumulation;
            Schedule = new CosineWithWarmup(config.Lr, StepsPerEpoch * config.Epochs, config.WarmupSteps);
            Checkpoints = new CheckpointWriter(this, train);
            Start = ResumePoint.Plan(
                config,
                () => Checkpoints.Fingerprint,
                Strategy == null || (Strategy is SyncStrategy && !CheckpointWriter.HasRankState(Strategy)),
                Loader.BatchesPerEpoch,
                StepsPerEpoch,
                Observers.Message
            );
            if (Start.State != null)
                Checkpoints.Restore(Start);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The world size the run started with (an elastic joiner learns it from rank 0).</summary>
    public int InitialWorkers { get; private set; }

    /// <summary>The learning-rate factor of an elastic run that keeps the per-worker batch: W / W₀ (1 otherwise).</summary>
    public double LrScale { get; private set; } = 1;

    /// <summary>This rank's batch: the config's, or under <see cref="ElasticBatch.KeepGlobal"/> its share of the first
    /// world's global batch.</summary>
    public int LocalBatch =>
        Config.ElasticBatch == ElasticBatch.KeepGlobal && InitialWorkers > 0
            ? Math.Max(1, (int)Math.Round(Config.BatchSize * (double)InitialWorkers / Workers))
            : Config.BatchSize;

    /// <summary>After a change of world size: the batch policy's learning-rate factor and a loader at this rank's
    /// batch and shard.</summary>
    private void Rescale()
    {
        LrScale = Config.ElasticBatch == ElasticBatch.KeepLocal ? Workers / (double)InitialWorkers : 1;
        Loader = MakeLoader();
    }

    /// <summary>A joiner takes the running job's first world size and learning-rate schedule.</summary>
    public void AdoptJob(int initialWorkers, long scheduleSteps)
    {
        InitialWorkers = initialWorkers;
        AdoptSchedule(scheduleSteps);
        Rescale();
    }

    private DataLoader MakeLoader() =>
        new(
            _train,
            new DataLoaderOptions
            {
                BatchSize = LocalBatch,
                Seed = Config.Seed,
                RandomCropPadding = Config.Augment ? 2 : 0,
                HorizontalFlip = Config.Augment,
                Rank = Rank < Workers ? Rank : 0,
                WorldSize = Workers,
            }
        );

    /// <summary>Bytes the groups of an elastic run's earlier generations put on the wire (each generation's group
    /// counts from zero).</summary>
    public long BytesOfPastGenerations { get; private set; }

    /// <summary>Communication, wait and compression seconds of an elastic run's earlier generations' strategies.</summary>
    public StrategySeconds SecondsOfPastGenerations { get; private set; }

    /// <summary>After <see cref="Elastic"/> formed a new generation: the strategy over the new group (its optimizer
    /// keeps this rank's state; the caller then makes every rank's state the new rank 0's) and this rank's shard of
    /// the data at the new world size.</summary>
    public void Regroup()
    {
        var elastic = Elastic ?? throw new InvalidOperationException("internal: regroup without an elastic group");
        // A partitioned state (zero1's, a parameter server's shards) is re-partitioned after this, from every member's
        // export: this rank's shard of the old partition does not fit the new one.
        bool partitioned = Strategy?.PartitionsOptimizer == true;
        var (tensors, scalars) = partitioned ? (new(), new()) : Optimizer.StateDict();
        var (strategyTensors, strategyScalars) = Strategy?.StateDict() ?? (new(), new());
        try
        {
            Strategy?.Dispose(); // its pending exchanges belong to the failed generation
            BytesOfPastGenerations += Group?.BytesSent ?? 0;
            if (Strategy != null)
                SecondsOfPastGenerations = SecondsOfPastGenerations.Plus(Strategy);
            Group = elastic.Group;
            // A new strategy starts by broadcasting rank 0's replica; this rank's own (its commit point) is put back, as
            // the state that every rank takes next may be another member's.
            var replica = Model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value.Clone().DetachFromScope());
            Strategy = CreateStrategy(Config, Model, Group);
            using (Autograd.GradMode.NoGrad())
                foreach (var (name, t) in Model.StateDict())
                {
                    Ops.CopyInto(t, replica[name]);
                    replica[name].Dispose();
                }
            Workers = Group.Size;
            Optimizer = Strategy?.Optimizer ?? Trainer.MakeOptimizer(Config, Model.Parameters());
            if (!partitioned)
                Optimizer.LoadStateDict(tensors, scalars);
            if (strategyTensors.Count > 0 || strategyScalars.Count > 0)
                Strategy?.LoadStateDict(strategyTensors, strategyScalars); // DiLoCo's outer state, this rank's view
            foreach (var p in Model.Parameters())
                p.Grad = null;
            Rescale();
        }
        finally
        {
            foreach (var t in tensors.Values.Concat(strategyTensors.Values))
                t.Dispose();
        }
    }

    /// <summary>The strategy a config names over the model, with its codec; null in one process. DGC applies the
    /// momentum itself (momentum correction): the optimizer then runs without it.</summary>
    private static ITrainingStrategy? CreateStrategy(TrainConfig config, Module model, IProcessGroup? group)
    {
        if (group == null || group.Size <= 1)
            return null;
        var codec = config.Compress?.Create(config.Seed, momentum: config.Momentum);
        var optimizerConfig = config.Compress is { OwnsMomentum: true } ? config with { Momentum = 0 } : config;
        return TrainingStrategies.Create(
            config.Strategy,
            model,
            group,
            ps => Trainer.MakeOptimizer(optimizerConfig, ps),
            codec,
            config.Elastic,
            config.ElasticCommitSteps
        );
    }

    public void Dispose()
    {
        _ownOptimizer?.Dispose();
        Strategy?.Dispose();
        Model.Dispose();
    }
}
