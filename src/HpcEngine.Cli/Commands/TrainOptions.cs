using CommandLine;

namespace HpcEngine.Cli.Commands;

/// <summary>The flags of <c>hpcengine train</c>.</summary>
[Verb("train", HelpText = "Train mlp, mlp-wide or cnn on Fashion-MNIST; evaluates every epoch, checkpoints, resumes.")]
public sealed class TrainOptions
{
    [Option("model", Default = "mlp", HelpText = "mlp | mlp-wide | cnn")]
    public string Model { get; set; } = "mlp";

    [Option("epochs", HelpText = "Epochs (default 15).")]
    public int? Epochs { get; set; }

    [Option("batch-size", HelpText = "Samples per step (default 128).")]
    public int? BatchSize { get; set; }

    [Option("optimizer", HelpText = "sgd | adam | adamw (default: sgd for mlp, adam otherwise).")]
    public string? Optimizer { get; set; }

    [Option("lr", HelpText = "Peak learning rate of the cosine schedule (default: 0.05 for sgd, 1e-3 for adam).")]
    public double? Lr { get; set; }

    [Option("momentum", HelpText = "SGD momentum (default 0.9).")]
    public double? Momentum { get; set; }

    [Option("weight-decay", HelpText = "Weight decay (default 0; adamw 0.01).")]
    public double? WeightDecay { get; set; }

    [Option("warmup-steps", Default = 0, HelpText = "Linear warm-up steps before the cosine decay.")]
    public int WarmupSteps { get; set; }

    [Option("clip-norm", Default = 0.0, HelpText = "Clip the global gradient norm (0: off).")]
    public double ClipNorm { get; set; }

    [Option("grad-accumulation", Default = 1, HelpText = "Micro-batches per optimizer step.")]
    public int GradAccumulation { get; set; }

    [Option("augment", Default = false, HelpText = "Random crop (padding 2) and horizontal flip.")]
    public bool Augment { get; set; }

    [Option("seed", Default = 0UL, HelpText = "Seed of initialisation, shuffling and augmentation.")]
    public ulong Seed { get; set; }

    [Option(
        "data",
        HelpText = "Fashion-MNIST directory (else HPCENGINE_DATA, Debian's package, then the embedded subset)."
    )]
    public string? Data { get; set; }

    [Option(
        "dataset",
        HelpText = "A prepared dataset directory (hpcengine data prepare): its train and test splits; the model's input "
            + "and output sizes come from its manifest."
    )]
    public string? Dataset { get; set; }

    [Option(
        "metrics-port",
        HelpText = "Serve Prometheus /metrics (and /dashboard) while training, rank r on PORT + its local rank."
    )]
    public int? MetricsPort { get; set; }

    [Option("metrics-host", Default = "127.0.0.1", HelpText = "The address the metrics endpoint binds.")]
    public string MetricsHost { get; set; } = "127.0.0.1";

    [Option(
        "dashboard",
        HelpText = "Serve the live dashboard (loss, accuracy, throughput, step timeline) at /dashboard; port 8265 "
            + "unless --metrics-port gives one."
    )]
    public bool Dashboard { get; set; }

    [Option(
        "metrics-log",
        HelpText = "Write a CSV row per step (loss, times, accuracy) to this file, flushed each step."
    )]
    public string? MetricsLog { get; set; }

    [Option("checkpoint-dir", HelpText = "Write a checkpoint here after every epoch.")]
    public string? CheckpointDir { get; set; }

    [Option(
        "resume",
        Default = false,
        HelpText = "Continue from the checkpoint in --checkpoint-dir (an error when there is none)."
    )]
    public bool Resume { get; set; }

    [Option(
        "resume-if-exists",
        HelpText = "Continue from the checkpoint in --checkpoint-dir if there is one, else start fresh (restart loops)."
    )]
    public bool ResumeIfExists { get; set; }

    [Option(
        "resume-from",
        HelpText = "Continue from the checkpoint in this directory (saving to --checkpoint-dir, if given)."
    )]
    public string? ResumeFrom { get; set; }

    [Option(
        "allow-resume-change",
        HelpText = "Changes a resume accepts, comma-separated: epochs (the schedule is stretched), world-size (sync without a codec: data position and schedule rescaled). Any other change is refused."
    )]
    public string? AllowResumeChange { get; set; }

    [Option("save-every", Default = 0, HelpText = "Also checkpoint every N optimizer steps (0: each epoch only).")]
    public int SaveEvery { get; set; }

    [Option(
        "allow-divergence",
        HelpText = "Record a NaN/Inf loss and go on (default: stop at the first one with an error)."
    )]
    public bool AllowDivergence { get; set; }

    [Option(
        "events",
        HelpText = "Write the run's events (progress, evaluations, epochs, messages, steps) as JSON lines to this file, flushed as they happen (rank 0)."
    )]
    public string? Events { get; set; }

    [Option(
        "timeout",
        HelpText = "Collective timeout in seconds (default 600, or HPCENGINE_TIMEOUT_S): a frozen peer fails the run after this long."
    )]
    public double? Timeout { get; set; }

    [Option(
        "max-steps",
        Default = 0L,
        HelpText = "Stop after this many optimizer steps in total, checkpointing there (0: no limit)."
    )]
    public long MaxSteps { get; set; }

    [Option(
        "threads",
        HelpText = "CPU kernel threads (default: all cores). Results are bitwise reproducible for a fixed count."
    )]
    public int? Threads { get; set; }

    [Option("json", HelpText = "Write the summary as JSON to this file (rank 0).")]
    public string? Json { get; set; }

    [Option(
        "strategy",
        Default = "sync",
        HelpText = "With several ranks: sync | zero1 | ssp:K | ssp:inf | ssp:K:S (the last S ranks are dedicated servers) | localsgd:H | diloco:H"
    )]
    public string Strategy { get; set; } = "sync";

    [Option(
        "compress",
        HelpText = "With several ranks and sync, localsgd or diloco: none | fp16 | bf16 | topk:F[:W] (W warm-up steps) | randomk:F | int8 | sign | powersgd:R | dgc:F (sgd only: the momentum moves into the codec)"
    )]
    public string? Compress { get; set; }

    [Option(
        "eval-every",
        Default = 0,
        HelpText = "Also evaluate every N optimizer steps (points of the accuracy-against-time curve)."
    )]
    public int EvalEvery { get; set; }

    [Option("trace-dir", HelpText = "Write each rank's Chrome trace (trace-rankR.json) here.")]
    public string? TraceDir { get; set; }

    [Option(
        "device",
        Default = "cpu",
        HelpText = "cpu (default), cuda or cuda:N: train on that device (one process for now)."
    )]
    public string Device { get; set; } = "cpu";

    [Option(
        "amp",
        Default = "none",
        HelpText = "Mixed precision: none or bf16 (matrix products on bf16 operands, fp32 accumulation and master weights)."
    )]
    public string Amp { get; set; } = "none";

    [Option(
        "cuda-graph",
        HelpText = "With --device cuda in one process: capture the training step in a CUDA graph and replay it (one launch per step)."
    )]
    public bool CudaGraph { get; set; }

    [Option(
        "backend",
        Default = "tcp",
        HelpText = "Collectives for data-parallel runs: tcp (GPU tensors are staged through host memory) or nccl (with --device cuda: each rank on cuda:LOCAL_RANK unless --device names one)."
    )]
    public string Backend { get; set; } = "tcp";

    [Option(
        "distributed",
        HelpText = "Data-parallel over the ranks of the environment (default: on under hpcengine launch/torchrun, mpirun, srun with several tasks, or PMI)."
    )]
    public bool Distributed { get; set; }

    [Option("no-distributed", HelpText = "One process, even where a launcher's environment is set.")]
    public bool NoDistributed { get; set; }

    [Option(
        "elastic",
        HelpText = "Keep training when a rank is lost: the survivors re-form and go on from their last commit point (sync, zero1, localsgd, diloco, any codec, ssp with servers on the workers; set by launch --elastic through HPCENGINE_ELASTIC)."
    )]
    public bool Elastic { get; set; }

    [Option(
        "elastic-batch",
        Default = "keep-local",
        HelpText = "What an elastic run keeps when workers come and go: keep-local (the per-worker batch; lr scaled by W/W0) or keep-global (the global batch; per-worker batch BatchSize*W0/W)."
    )]
    public string ElasticBatch { get; set; } = "keep-local";

    [Option(
        "elastic-commit-steps",
        Default = 20,
        HelpText = "ssp under --elastic: steps between commit points (and one at each epoch's end), where the workers meet and each shard's state is copied to the next rank; a loss redoes the steps since the last one."
    )]
    public int ElasticCommitSteps { get; set; } = 20;

    [Option(
        "fault-plan",
        HelpText = "Injected faults, ';'-separated: kill:rank=R,step=S (SIGKILL after step S) or stop:rank=R,step=S,seconds=T (frozen for T s). Also HPCENGINE_FAULT_PLAN."
    )]
    public string? FaultPlan { get; set; }
}
