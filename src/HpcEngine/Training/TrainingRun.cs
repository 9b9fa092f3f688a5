using HpcEngine.Data;
using HpcEngine.Distributed;
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
    public IProcessGroup? Group { get; }
    public RunObservers Observers { get; }
    public Generator Generator { get; }
    public Module Model { get; }
    public Device Device { get; }

    /// <summary>With several ranks: what is communicated after each backward; null in one process.</summary>
    public ITrainingStrategy? Strategy { get; }
    public Optimizer Optimizer { get; }
    public DataLoader Loader { get; }
    public CosineWithWarmup Schedule { get; }

    /// <summary>Ranks that train (a parameter server's dedicated server ranks do not).</summary>
    public int Workers { get; }
    public long StepsPerEpoch { get; }
    public ResumePoint Start { get; }
    public CheckpointWriter Checkpoints { get; }

    public int Rank => Group?.Rank ?? 0;
    public bool Lead => Group == null || Group.Rank == 0;
    public ParameterServerStrategy? Server => Strategy as ParameterServerStrategy;
    public DistributedDataParallel? Ddp => (Strategy as SyncStrategy)?.Ddp;

    public TrainingRun(TrainConfig config, ImageDataset train, IProcessGroup? group, RunObservers observers)
    {
        Config = config;
        Group = group;
        Observers = observers;
        Generator = new Generator(config.Seed);
        Model = Models.Create(config.Model, Generator);
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
            Loader = new DataLoader(
                train,
                new DataLoaderOptions
                {
                    BatchSize = config.BatchSize,
                    Seed = config.Seed,
                    RandomCropPadding = config.Augment ? 2 : 0,
                    HorizontalFlip = config.Augment,
                    Rank = Rank < Workers ? Rank : 0,
                    WorldSize = Workers,
                }
            );
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
            codec
        );
    }

    public void Dispose()
    {
        _ownOptimizer?.Dispose();
        Strategy?.Dispose();
        Model.Dispose();
    }
}
