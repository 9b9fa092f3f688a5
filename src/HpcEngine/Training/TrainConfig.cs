namespace HpcEngine.Training;

/// <summary>A training run's settings. <see cref="For"/> gives each model's defaults.</summary>
public sealed record TrainConfig
{
    public string Model { get; init; } = "mlp";
    public int Epochs { get; init; } = 15;
    public int BatchSize { get; init; } = 128;
    public string Optimizer { get; init; } = "sgd";
    public double Lr { get; init; } = 0.05;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; }
    public ulong Seed { get; init; }
    /// <summary>Linear warm-up steps before the cosine decay.</summary>
    public int WarmupSteps { get; init; }
    /// <summary>Clip the global gradient norm to this (0: off).</summary>
    public double ClipNorm { get; init; }
    /// <summary>Random crop (padding 2) and horizontal flip.</summary>
    public bool Augment { get; init; }
    /// <summary>Micro-batches whose gradients are summed before each optimizer step.</summary>
    public int GradAccumulation { get; init; } = 1;
    public string? CheckpointDir { get; init; }
    /// <summary>Continue from the checkpoint in <see cref="CheckpointDir"/> (an error when there is none).</summary>
    public bool Resume { get; init; }
    /// <summary>Continue from the checkpoint in <see cref="CheckpointDir"/> when there is one, else start fresh (for
    /// restart loops).</summary>
    public bool ResumeIfExists { get; init; }
    /// <summary>Continue from the checkpoint in this directory (saving, if <see cref="CheckpointDir"/> is set, there).</summary>
    public string? ResumeFrom { get; init; }
    /// <summary>Changes of the run's fingerprint a resume accepts (<see cref="ResumeChange"/>); any other is refused.</summary>
    public IReadOnlyList<string> AllowResumeChanges { get; init; } = [];
    /// <summary>Also checkpoint every this many optimizer steps (0: at the end of each epoch only).</summary>
    public int SaveEverySteps { get; init; }
    /// <summary>Record a NaN/Inf loss and go on (benchmarks that count divergence as an outcome); by default a run
    /// stops at its first non-finite loss with a <see cref="TrainingDivergedException"/>.</summary>
    public bool AllowDivergence { get; init; }
    /// <summary>Stop after this many optimizer steps in total (0: run all epochs); a checkpoint is written there.</summary>
    public long MaxSteps { get; init; }
    /// <summary>With several ranks: sync, zero1, ssp:K[:S], localsgd:H or diloco:H (see <see cref="Parallel.StrategySpec"/>).</summary>
    public string Strategy { get; init; } = "sync";

    /// <summary><see cref="Strategy"/> parsed (an error names the text and the grammar).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Parallel.StrategySpec StrategySpec
    {
        get
        {
            try { return Parallel.StrategySpec.Parse(Strategy); }
            catch (ArgumentException e) { throw new ArgumentException($"--strategy: {e.Message}", e); }
        }
    }
    /// <summary>With several ranks: a gradient codec (none, fp16, bf16, topk:F, randomk:F, int8, sign, powersgd:R) for
    /// sync, localsgd or diloco.</summary>
    public string? Compress { get; init; }
    /// <summary>Also evaluate every this many optimizer steps (0: at the end of each epoch only); the points make the
    /// accuracy-against-time curve.</summary>
    public int EvalEverySteps { get; init; }
    /// <summary>Write this rank's Chrome trace (trace-rank{R}.json) into this directory.</summary>
    public string? TraceDir { get; init; }
    /// <summary>Where the model trains: "cpu" (default), or a device whose backend is registered ("cuda", "cuda:1":
    /// the CLI registers the CUDA backend); with several ranks each trains on its device (every strategy but ssp).</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>Mixed precision: "none" (default) or "bf16" (matrix products on bf16 operands with fp32 accumulation,
    /// fp32 master weights; see <see cref="Autograd.Autocast"/>).</summary>
    public string Amp { get; init; } = "none";
    /// <summary>On a GPU, one process: capture the training step (forward, backward, optimizer) in a CUDA graph after
    /// the first batch and replay it for every full batch — one launch per step instead of one per kernel.</summary>
    public bool CudaGraph { get; init; }
    /// <summary>Emulated straggler, "RANK:FACTOR": that rank's compute takes FACTOR times as long (the CLI reads it from
    /// HPCENGINE_STRAGGLER; null: none). A rank the job does not have is an error.</summary>
    public string? Straggler { get; init; }

    /// <summary>Defaults per model: mlp SGD+momentum 0.05, cosine; mlp-wide and cnn Adam 1e-3, cosine.</summary>
    public static TrainConfig For(string model) => model switch
    {
        "mlp" => new TrainConfig { Model = model, Optimizer = "sgd", Lr = 0.05, Momentum = 0.9, Epochs = 15, BatchSize = 128 },
        "mlp-wide" => new TrainConfig { Model = model, Optimizer = "adam", Lr = 1e-3, Epochs = 15, BatchSize = 128 },
        "cnn" => new TrainConfig { Model = model, Optimizer = "adam", Lr = 1e-3, Epochs = 15, BatchSize = 128 },
        _ => throw new ArgumentException($"unknown model '{model}' for image training: use mlp, mlp-wide or cnn"),
    };

    /// <summary>Checks the settings, naming the first bad one.</summary>
    public void Validate()
    {
        if (Model is not ("mlp" or "mlp-wide" or "cnn")) throw new ArgumentException($"--model must be mlp, mlp-wide or cnn, got '{Model}'");
        if (Epochs <= 0) throw new ArgumentException($"--epochs must be positive, got {Epochs}");
        if (BatchSize <= 0) throw new ArgumentException($"--batch-size must be positive, got {BatchSize}");
        if (!(Lr > 0) || !double.IsFinite(Lr)) throw new ArgumentException($"--lr must be a positive finite number, got {Lr}");
        if (!(Momentum >= 0 && Momentum < 1)) throw new ArgumentException($"--momentum must be in [0, 1), got {Momentum}");
        if (!(WeightDecay >= 0) || !double.IsFinite(WeightDecay)) throw new ArgumentException($"--weight-decay must be 0 or more, got {WeightDecay}");
        if (WarmupSteps < 0) throw new ArgumentException($"--warmup-steps must be 0 or more, got {WarmupSteps}");
        if (!(ClipNorm >= 0) || !double.IsFinite(ClipNorm)) throw new ArgumentException($"--clip-norm must be 0 (off) or a positive number, got {ClipNorm}");
        if (MaxSteps < 0) throw new ArgumentException($"--max-steps must be 0 (no limit) or more, got {MaxSteps}");
        if (SaveEverySteps < 0) throw new ArgumentException($"--save-every must be 0 (each epoch) or more, got {SaveEverySteps}");
        if (SaveEverySteps > 0 && CheckpointDir == null) throw new ArgumentException("--save-every needs --checkpoint-dir");
        if (ResumeIfExists && CheckpointDir == null) throw new ArgumentException("--resume-if-exists needs --checkpoint-dir");
        if (ResumeFrom != null && (Resume || ResumeIfExists)) throw new ArgumentException("--resume-from names the checkpoint to continue from: it does not combine with --resume or --resume-if-exists");
        foreach (var change in AllowResumeChanges)
            if (!ResumeChange.All.Contains(change)) throw new ArgumentException($"--allow-resume-change: '{change}' is not a change a resume can accept (accepted: {string.Join(", ", ResumeChange.All)})");
        if (Optimizer is not ("sgd" or "adam" or "adamw")) throw new ArgumentException($"--optimizer must be sgd, adam or adamw, got '{Optimizer}'");
        if (GradAccumulation < 1) throw new ArgumentException($"--grad-accumulation must be at least 1, got {GradAccumulation}");
        if (Resume && CheckpointDir == null) throw new ArgumentException("--resume needs --checkpoint-dir");
        var strategy = StrategySpec;
        if (Compress != null && !strategy.AcceptsCodec)
            throw new ArgumentException($"--compress composes with --strategy sync, localsgd or diloco (got {Strategy})");
        if (CheckpointDir != null && !strategy.CanCheckpoint)
            throw new ArgumentException($"--checkpoint-dir is not supported with --strategy {Strategy}: a parameter server's pushes in flight between ranks cannot be captured; use sync, zero1, localsgd or diloco");
        if (EvalEverySteps < 0) throw new ArgumentException($"--eval-every must be 0 or more, got {EvalEverySteps}");
        if (CudaGraph && HpcEngine.Device.Parse(Device).Type == DeviceType.Cpu) throw new ArgumentException("--cuda-graph needs --device cuda");
        if (Amp is not ("none" or "bf16")) throw new ArgumentException($"--amp must be none or bf16, got '{Amp}'");
        var device = HpcEngine.Device.Parse(Device);
        if (device.Type != DeviceType.Cpu)
        {
            // What has a device path today (docs/ARCHITECTURE.md, device backends): say so rather than fail mid-run.
            if (CudaGraph && (GradAccumulation > 1 || ClipNorm > 0))
                throw new ArgumentException("--cuda-graph replays one whole step: it does not combine with --grad-accumulation or --clip-norm (the norm is read on the host)");
            if (!strategy.RunsOnDevices)
                throw new ArgumentException($"--device {Device}: the parameter-server strategy (--strategy {Strategy}) runs on CPU parameters only; use sync, zero1, localsgd or diloco");
        }
        if (Compress != null && Compress.StartsWith("dgc", StringComparison.Ordinal) && (Optimizer != "sgd" || strategy.Kind != Parallel.StrategyKind.Sync))
            throw new ArgumentException($"--compress {Compress} moves SGD's momentum into the codec (momentum correction): use --optimizer sgd and --strategy sync (got {Optimizer}, {Strategy})");
    }
}
