using System.Text.Json.Serialization;
using HpcEngine.Compression;
using HpcEngine.Parallel;

namespace HpcEngine.Training;

/// <summary>The optimizers a run can use.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OptimizerKind>))]
public enum OptimizerKind
{
    /// <summary>SGD with (heavy-ball) momentum and L2 weight decay.</summary>
    [JsonStringEnumMemberName("sgd")]
    Sgd,

    /// <summary>Adam with L2 weight decay.</summary>
    [JsonStringEnumMemberName("adam")]
    Adam,

    /// <summary>Adam with decoupled weight decay (0.01 unless set).</summary>
    [JsonStringEnumMemberName("adamw")]
    AdamW,
}

/// <summary>What an elastic run keeps when its world size changes.</summary>
public enum ElasticBatch
{
    /// <summary>The per-worker batch; the learning rate is scaled with the world size (linear scaling: W / W₀).</summary>
    KeepLocal,

    /// <summary>The global batch: the per-worker batch becomes BatchSize · W₀ / W (rounded); the rate is kept.</summary>
    KeepGlobal,
}

/// <summary>Mixed precision for the matrix products.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<MixedPrecision>))]
public enum MixedPrecision
{
    /// <summary>float32 throughout.</summary>
    [JsonStringEnumMemberName("none")]
    None,

    /// <summary>bf16 operands with fp32 accumulation and fp32 master weights (<see
    /// cref="Autograd.Autocast"/>).</summary>
    [JsonStringEnumMemberName("bf16")]
    Bf16,
}

/// <summary>A training run's settings, typed: each spec is parsed where it is set (<see cref="StrategySpec.Parse"/>,
/// <see cref="CodecSpec.Parse"/>, <see cref="HpcEngine.Device.Parse"/>), and <see cref="Validate"/> checks how they
/// combine, naming the properties (<see cref="TrainConfigException"/>). <see cref="For"/> gives each model's
/// defaults. Serialized (checkpoints, results), the specs are written as the text users type.</summary>
public sealed record TrainConfig
{
    /// <summary>The models <see cref="Model"/> names.</summary>
    public static IReadOnlyList<string> Models { get; } = ["mlp", "mlp-wide", "cnn"];

    /// <summary>The model: mlp, mlp-wide or cnn.</summary>
    public string Model { get; init; } = "mlp";

    /// <summary>Passes over the training set.</summary>
    public int Epochs { get; init; } = 15;

    /// <summary>Samples per step and rank.</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>The optimizer (with several ranks, the strategy's inner optimizer).</summary>
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Sgd;

    /// <summary>Peak learning rate of the cosine schedule.</summary>
    public double Lr { get; init; } = 0.05;

    /// <summary>SGD's momentum.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>Weight decay (L2 for SGD and Adam, decoupled for AdamW).</summary>
    public double WeightDecay { get; init; }

    /// <summary>The seed of initialization, shuffling, augmentation and dropout.</summary>
    public ulong Seed { get; init; }

    /// <summary>Linear warm-up steps before the cosine decay.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>Clip the global gradient norm to this (0: off).</summary>
    public double ClipNorm { get; init; }

    /// <summary>Random crop (padding 2) and horizontal flip.</summary>
    public bool Augment { get; init; }

    /// <summary>Micro-batches whose gradients are summed before each optimizer step.</summary>
    public int GradAccumulation { get; init; } = 1;

    /// <summary>Where checkpoints are written (null: none).</summary>
    public string? CheckpointDir { get; init; }

    /// <summary>Continue from the checkpoint in <see cref="CheckpointDir"/> (an error when there is none).</summary>
    public bool Resume { get; init; }

    /// <summary>Continue from the checkpoint in <see cref="CheckpointDir"/> when there is one, else start fresh (for
    /// restart loops).</summary>
    public bool ResumeIfExists { get; init; }

    /// <summary>Continue from the checkpoint in this directory (saving, if <see cref="CheckpointDir"/> is set,
    /// there).</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>Changes of the run's fingerprint a resume accepts (<see cref="ResumeChange"/>); any other is
    /// refused.</summary>
    public IReadOnlyList<string> AllowResumeChanges { get; init; } = [];

    /// <summary>Also checkpoint every this many optimizer steps (0: at the end of each epoch only).</summary>
    public int SaveEverySteps { get; init; }

    /// <summary>Record a NaN/Inf loss and go on (benchmarks that count divergence as an outcome); by default a run
    /// stops at its first non-finite loss with a <see cref="TrainingDivergedException"/>.</summary>
    public bool AllowDivergence { get; init; }

    /// <summary>Stop after this many optimizer steps in total (0: run all epochs); a checkpoint is written
    /// there.</summary>
    public long MaxSteps { get; init; }

    /// <summary>With several ranks: sync, zero1, ssp:K[:S], localsgd:H or diloco:H.</summary>
    public StrategySpec Strategy { get; init; } = StrategySpec.Sync;

    /// <summary>With several ranks: a gradient codec for sync, localsgd or diloco (null: none).</summary>
    public CodecSpec? Compress { get; init; }

    /// <summary>Also evaluate every this many optimizer steps (0: at the end of each epoch only); the points make the
    /// accuracy-against-time curve.</summary>
    public int EvalEverySteps { get; init; }

    /// <summary>Write each rank's Chrome trace (trace-rank{R}.json) into this directory (<see
    /// cref="TraceObserver"/>).</summary>
    public string? TraceDir { get; init; }

    /// <summary>Where the model trains: the CPU (default), or a device whose backend is registered; with several
    /// ranks each trains on its device (every strategy but ssp).</summary>
    public Device Device { get; init; } = Device.Cpu;

    /// <summary>Mixed precision of the matrix products.</summary>
    public MixedPrecision Amp { get; init; } = MixedPrecision.None;

    /// <summary>On a GPU, one process: capture the training step (forward, backward, optimizer) in a CUDA graph after
    /// the first batch and replay it for every full batch — one launch per step instead of one per kernel.</summary>
    public bool CudaGraph { get; init; }

    /// <summary>An emulated straggler, "RANK:FACTOR": that rank's compute takes FACTOR times as long
    /// (<see cref="StragglerObserver"/>; null: none). A rank the job does not have is an error.</summary>
    public string? Straggler { get; init; }

    /// <summary>Keep training when a rank is lost (<see cref="Trainer.RunElastic"/>): the survivors re-form and go on
    /// from their last commit point with the most advanced member's state. Supported for sync, zero1, localsgd,
    /// diloco (with or without a codec) and ssp with co-located servers, one step per batch and checkpoints at epoch
    /// ends only (each a <c>TrainConfigException</c> otherwise). Not part of the run's
    /// fingerprint: a resume may turn it on or off.</summary>
    [JsonIgnore]
    public bool Elastic { get; init; }

    /// <summary>What an elastic run keeps when its world size changes (default: the per-worker batch, with the
    /// learning rate scaled linearly). Not part of the fingerprint.</summary>
    [JsonIgnore]
    public ElasticBatch ElasticBatch { get; init; } = ElasticBatch.KeepLocal;

    /// <summary>ssp under <see cref="Elastic"/>: steps between commit points (and one at each epoch's end), where the
    /// workers meet and every shard's state is copied to the next rank. A loss redoes the steps since the last one.
    /// Not part of the fingerprint.</summary>
    [JsonIgnore]
    public int ElasticCommitSteps { get; init; } = Parallel.TrainingStrategies.DefaultCommitSteps;

    /// <summary>The codec's name as results report it ("none" without one).</summary>
    [JsonIgnore]
    public string CodecName => Compress?.ToString() ?? "none";

    /// <summary>Parses an optimizer's name: sgd, adam or adamw.</summary>
    public static OptimizerKind ParseOptimizer(string text) =>
        text switch
        {
            "sgd" => OptimizerKind.Sgd,
            "adam" => OptimizerKind.Adam,
            "adamw" => OptimizerKind.AdamW,
            _ => throw new TrainConfigException(
                nameof(Optimizer),
                $"{{Optimizer}} must be sgd, adam or adamw, got '{text}'"
            ),
        };

    /// <summary>Parses an elastic batch policy: keep-local or keep-global.</summary>
    public static ElasticBatch ParseElasticBatch(string text) =>
        text switch
        {
            "keep-local" => ElasticBatch.KeepLocal,
            "keep-global" => ElasticBatch.KeepGlobal,
            _ => throw new TrainConfigException(
                nameof(ElasticBatch),
                $"{{ElasticBatch}} must be keep-local or keep-global, got '{text}'"
            ),
        };

    /// <summary>Parses a mixed-precision mode: none or bf16.</summary>
    public static MixedPrecision ParseAmp(string text) =>
        text switch
        {
            "none" => MixedPrecision.None,
            "bf16" => MixedPrecision.Bf16,
            _ => throw new TrainConfigException(nameof(Amp), $"{{Amp}} must be none or bf16, got '{text}'"),
        };

    /// <summary>Defaults per model: mlp SGD+momentum 0.05, cosine; mlp-wide and cnn Adam 1e-3, cosine.</summary>
    public static TrainConfig For(string model) =>
        model switch
        {
            "mlp" => new TrainConfig
            {
                Model = model,
                Optimizer = OptimizerKind.Sgd,
                Lr = 0.05,
                Momentum = 0.9,
                Epochs = 15,
                BatchSize = 128,
            },
            "mlp-wide" or "cnn" => new TrainConfig
            {
                Model = model,
                Optimizer = OptimizerKind.Adam,
                Lr = 1e-3,
                Epochs = 15,
                BatchSize = 128,
            },
            _ => throw new TrainConfigException(
                nameof(Model),
                $"unknown {{Model}} '{model}' for image training: use mlp, mlp-wide or cnn"
            ),
        };

    /// <summary>Checks the settings and how they combine, naming the first bad one.</summary>
    /// <exception cref="TrainConfigException">A setting is out of range or does not combine with another.</exception>
    public void Validate()
    {
        static void Require(bool ok, string property, string problem)
        {
            if (!ok)
                throw new TrainConfigException(property, problem);
        }
        Require(Models.Contains(Model), nameof(Model), $"{{Model}} must be mlp, mlp-wide or cnn, got '{Model}'");
        Require(Epochs > 0, nameof(Epochs), $"{{Epochs}} must be positive, got {Epochs}");
        Require(BatchSize > 0, nameof(BatchSize), $"{{BatchSize}} must be positive, got {BatchSize}");
        Require(Lr > 0 && double.IsFinite(Lr), nameof(Lr), $"{{Lr}} must be a positive finite number, got {Lr}");
        Require(Momentum >= 0 && Momentum < 1, nameof(Momentum), $"{{Momentum}} must be in [0, 1), got {Momentum}");
        Require(
            WeightDecay >= 0 && double.IsFinite(WeightDecay),
            nameof(WeightDecay),
            $"{{WeightDecay}} must be 0 or more, got {WeightDecay}"
        );
        Require(WarmupSteps >= 0, nameof(WarmupSteps), $"{{WarmupSteps}} must be 0 or more, got {WarmupSteps}");
        Require(
            ClipNorm >= 0 && double.IsFinite(ClipNorm),
            nameof(ClipNorm),
            $"{{ClipNorm}} must be 0 (off) or a positive number, got {ClipNorm}"
        );
        Require(
            !Elastic || Strategy.Kind != StrategyKind.ParameterServer || Strategy.DedicatedServers == 0,
            nameof(Elastic),
            "{Elastic} recovers sync, zero1, localsgd, diloco and ssp with servers on the workers, not "
                + Strategy
                + ": dedicated server ranks would have to be replaced by training ranks; use ssp:K (every rank serves "
                + "a shard)"
        );
        Require(
            ElasticCommitSteps > 0,
            nameof(ElasticCommitSteps),
            $"{{ElasticCommitSteps}} must be 1 or more, got {ElasticCommitSteps}"
        );
        Require(
            !Elastic || (GradAccumulation == 1 && SaveEverySteps == 0 && MaxSteps == 0 && !CudaGraph),
            nameof(Elastic),
            "{Elastic} needs one step per batch ({GradAccumulation} 1), checkpoints at epoch ends ({SaveEverySteps} 0), no {MaxSteps} and no {CudaGraph}"
        );
        Require(MaxSteps >= 0, nameof(MaxSteps), $"{{MaxSteps}} must be 0 (no limit) or more, got {MaxSteps}");
        Require(
            SaveEverySteps >= 0,
            nameof(SaveEverySteps),
            $"{{SaveEverySteps}} must be 0 (each epoch) or more, got {SaveEverySteps}"
        );
        Require(
            SaveEverySteps == 0 || CheckpointDir != null,
            nameof(SaveEverySteps),
            "{SaveEverySteps} needs {CheckpointDir}"
        );
        Require(
            !ResumeIfExists || CheckpointDir != null,
            nameof(ResumeIfExists),
            "{ResumeIfExists} needs {CheckpointDir}"
        );
        Require(!Resume || CheckpointDir != null, nameof(Resume), "{Resume} needs {CheckpointDir}");
        Require(
            ResumeFrom == null || !(Resume || ResumeIfExists),
            nameof(ResumeFrom),
            "{ResumeFrom} names the checkpoint to continue from: it does not combine with {Resume} or {ResumeIfExists}"
        );
        foreach (var change in AllowResumeChanges)
            Require(
                ResumeChange.All.Contains(change),
                nameof(AllowResumeChanges),
                $"{{AllowResumeChanges}}: '{change}' is not a change a resume can accept (accepted: {string.Join(", ", ResumeChange.All)})"
            );
        Require(
            Enum.IsDefined(Optimizer),
            nameof(Optimizer),
            $"{{Optimizer}} must be sgd, adam or adamw, got {Optimizer}"
        );
        Require(Enum.IsDefined(Amp), nameof(Amp), $"{{Amp}} must be none or bf16, got {Amp}");
        Require(
            GradAccumulation >= 1,
            nameof(GradAccumulation),
            $"{{GradAccumulation}} must be at least 1, got {GradAccumulation}"
        );
        Require(
            EvalEverySteps >= 0,
            nameof(EvalEverySteps),
            $"{{EvalEverySteps}} must be 0 or more, got {EvalEverySteps}"
        );
        ArgumentNullException.ThrowIfNull(Strategy);
        Require(
            Compress == null || Strategy.AcceptsCodec,
            nameof(Compress),
            $"{{Compress}} composes with {{Strategy}} sync, localsgd or diloco (got {Strategy})"
        );
        Require(
            CheckpointDir == null || Strategy.CanCheckpoint,
            nameof(CheckpointDir),
            $"{{CheckpointDir}} is not supported with {{Strategy}} {Strategy}: a parameter server's pushes in flight "
                + $"between ranks cannot be captured; use sync, zero1, localsgd or diloco"
        );
        Require(!CudaGraph || Device.Type != DeviceType.Cpu, nameof(CudaGraph), "{CudaGraph} needs {Device} cuda");
        // What has a device path today (docs/ARCHITECTURE.md, device backends): say so rather than fail mid-run.
        Require(
            !CudaGraph || (GradAccumulation == 1 && ClipNorm == 0),
            nameof(CudaGraph),
            "{CudaGraph} replays one whole step: it does not combine with {GradAccumulation} or {ClipNorm} (the norm "
                + "is read on the host)"
        );
        Require(
            Device.Type == DeviceType.Cpu || Strategy.RunsOnDevices,
            nameof(Device),
            $"{{Device}} {Device}: the parameter-server strategy ({{Strategy}} {Strategy}) runs on CPU parameters "
                + $"only; use sync, zero1, localsgd or diloco"
        );
        Require(
            Compress is not { OwnsMomentum: true }
                || (Optimizer == OptimizerKind.Sgd && Strategy.Kind == StrategyKind.Sync),
            nameof(Compress),
            $"{{Compress}} {Compress} moves SGD's momentum into the codec (momentum correction): use {{Optimizer}} sgd "
                + $"and {{Strategy}} sync (got {Optimizer.ToString().ToLowerInvariant()}, {Strategy})"
        );
        if (Straggler != null)
            StragglerObserver.FactorFor(0, int.MaxValue, Straggler);
    }
}
