using System.Globalization;
using CommandLine;
using HpcEngine.Backends.Cpu;
using HpcEngine.Datasets;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

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
        HelpText = "Keep training when a rank is lost: the survivors re-form and go on from rank 0's state (sync strategy, no codec; set by launch --elastic through HPCENGINE_ELASTIC)."
    )]
    public bool Elastic { get; set; }

    [Option(
        "fault-plan",
        HelpText = "Injected faults, ';'-separated: kill:rank=R,step=S (SIGKILL after step S) or stop:rank=R,step=S,seconds=T (frozen for T s). Also HPCENGINE_FAULT_PLAN."
    )]
    public string? FaultPlan { get; set; }
}

/// <summary>Output locations checked before a run starts: a typo in --json must not cost the run.</summary>
internal static class OutputPaths
{
    public static void CheckFile(string flag, string? path)
    {
        if (path == null)
            return;
        if (Directory.Exists(path))
            throw new ArgumentException($"{flag} {path} is a directory; give a file name");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir))
            throw new ArgumentException($"{flag} {path}: the directory {dir} does not exist");
        Probe(flag, path, dir);
    }

    public static void CheckDirectory(string flag, string? path)
    {
        if (path == null)
            return;
        if (File.Exists(path))
            throw new ArgumentException($"{flag} {path} is a file; give a directory");
        try
        {
            Directory.CreateDirectory(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{flag} {path} cannot be created: {e.Message}", e);
        }
        Probe(flag, path, path);
    }

    private static void Probe(string flag, string path, string dir)
    {
        string probe = Path.Combine(dir, $".hpcengine-probe-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        try
        {
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{flag} {path}: cannot write in {dir}: {e.Message}", e);
        }
    }
}

internal static class TrainCommand
{
    public static int Run(TrainOptions o)
    {
        var d = TrainConfig.For(o.Model);
        var optimizer = o.Optimizer != null ? TrainConfig.ParseOptimizer(o.Optimizer) : d.Optimizer;
        var config = d with
        {
            Epochs = o.Epochs ?? d.Epochs,
            BatchSize = o.BatchSize ?? d.BatchSize,
            Optimizer = optimizer,
            Lr = o.Lr ?? (optimizer == OptimizerKind.Sgd ? 0.05 : 1e-3),
            Momentum = o.Momentum ?? d.Momentum,
            WeightDecay = o.WeightDecay ?? d.WeightDecay,
            WarmupSteps = o.WarmupSteps,
            ClipNorm = o.ClipNorm,
            GradAccumulation = o.GradAccumulation,
            Augment = o.Augment,
            Seed = o.Seed,
            CheckpointDir = o.CheckpointDir,
            Resume = o.Resume,
            ResumeIfExists = o.ResumeIfExists,
            ResumeFrom = o.ResumeFrom,
            AllowResumeChanges = o.AllowResumeChange?.Split(
                ',',
                StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries
            ) ?? [],
            SaveEverySteps = o.SaveEvery,
            AllowDivergence = o.AllowDivergence,
            MaxSteps = o.MaxSteps,
            Strategy = TrainFlags.Parse("--strategy", o.Strategy, Parallel.StrategySpec.Parse),
            Compress =
                o.Compress == null ? null : TrainFlags.Parse("--compress", o.Compress, Compression.CodecSpec.Parse),
            EvalEverySteps = o.EvalEvery,
            TraceDir = o.TraceDir,
            Device = TrainFlags.Parse("--device", o.Device, HpcEngine.Device.Parse),
            Amp = TrainConfig.ParseAmp(o.Amp),
            CudaGraph = o.CudaGraph,
            Straggler = CliEnvironment.Straggler,
            Elastic = o.Elastic || CliEnvironment.Elastic,
        };
        config.Validate();
        if (o.Threads is { } th && th < 1)
            throw new ArgumentException($"--threads must be at least 1, got {th}");
        if (o.Timeout is { } to && !(to > 0 && double.IsFinite(to)))
            throw new ArgumentException($"--timeout must be positive seconds, got {to}");
        if (o.Distributed && o.NoDistributed)
            throw new ArgumentException("--distributed and --no-distributed contradict each other");
        // Found out now, not after an hour of training.
        OutputPaths.CheckFile("--json", o.Json);
        OutputPaths.CheckFile("--events", o.Events);
        OutputPaths.CheckDirectory("--trace-dir", o.TraceDir);
        OutputPaths.CheckDirectory("--checkpoint-dir", o.CheckpointDir);
        var device = config.Device;
        if (o.Backend is not ("tcp" or "nccl"))
            throw new ArgumentException($"--backend must be tcp or nccl, got '{o.Backend}'");
        if (o.Backend == "nccl" && device.Type != DeviceType.Cuda)
            throw new ArgumentException("--backend nccl needs --device cuda (NCCL reduces GPU memory)");
        bool distributed =
            o.Distributed || (!o.NoDistributed && HpcEngine.Distributed.DistributedEnvironment.IsPresent());
        if (device.Type == DeviceType.Cuda)
        {
            // Under a launcher, "cuda" means this rank's own GPU (cuda:LOCAL_RANK), as torchrun users expect.
            if (distributed && o.Device == "cuda")
                device = HpcEngine.Device.Cuda(HpcEngine.Distributed.DistributedEnvironment.Resolve().LocalRank);
            HpcEngine.Cuda.CudaBackend.Register(device.Index); // also makes the nccl collective backend available
            config = config with { Device = device };
        }
        if (o.Threads is { } t)
            KernelThreads.Count = t;
        var tcp = HpcEngine.Distributed.Tcp.TcpOptions.FromEnvironment(
            distributed ? HpcEngine.Distributed.DistributedEnvironment.Resolve().MasterAddr : "127.0.0.1"
        );
        if (o.Timeout is { } seconds)
            tcp = tcp with { Timeout = TimeSpan.FromSeconds(seconds) };
        // GPU tensors over TCP are staged through host memory; NCCL (registered with the CUDA backend) reduces them in
        // place.
        if (config.Elastic && (!distributed || o.Backend != "tcp" || device.Type != DeviceType.Cpu))
            throw new ArgumentException(
                "--elastic needs a launcher (hpcengine launch --elastic), --backend tcp and the CPU"
            );
        var faults = (o.FaultPlan ?? CliEnvironment.FaultPlan) is { } plan
            ? TrainFlags.Parse("--fault-plan", plan, Training.FaultPlan.Parse)
            : null;
        // An elastic job detects a frozen or cut-off rank by its silence: a heartbeat every 0.5 s, lost after 2 s.
        using var elastic = config.Elastic
            ? HpcEngine.Distributed.Elastic.ElasticGroup.InitFromEnvironment(
                new HpcEngine.Distributed.Elastic.ElasticOptions
                {
                    Tcp = tcp with
                    {
                        HeartbeatInterval = TimeSpan.FromMilliseconds(500),
                        PeerTimeout = tcp.PeerTimeout ?? TimeSpan.FromSeconds(2),
                    },
                }
            )
            : null;
        using HpcEngine.Distributed.IProcessGroup? owned =
            distributed && elastic == null ? HpcEngine.Distributed.ProcessGroups.Create(o.Backend, device, tcp) : null;
        var group = elastic?.Group ?? owned;
        bool lead = group == null || group.Rank == 0;
        void Say(string line)
        {
            if (elastic != null ? elastic.Group.Rank == 0 : lead)
                Console.WriteLine(line);
        }
        var (train, test, source) = DataSources.LoadFashionMnist(o.Data);
        using (train)
        using (test)
        {
            Say($"data: {source}: {train.Count} training, {test.Count} test images");
            Say(
                $"model {config.Model}, optimizer {config.Optimizer} lr {config.Lr.ToString(CultureInfo.InvariantCulture)} (cosine), batch {config.BatchSize}{(group != null ? $" per rank × {group.Size} ranks (data parallel over {group.Backend}, strategy {config.Strategy}{(config.Compress != null ? ", compression " + config.Compress : "")})" : "")}, {config.Epochs} epochs, seed {config.Seed}, {(device.Type == DeviceType.Cpu ? $"{KernelThreads.Count} threads" : $"on {device}")}"
            );
            TrainResult r;
            using var events =
                o.Events != null && lead ? new JsonLinesObserver(new StreamWriter(o.Events), steps: true) : null;
            var watchers = new List<ITrainingObserver>();
            if (events != null)
                watchers.Add(events);
            if (faults != null)
                watchers.Add(new FaultPlanObserver(faults, elastic?.MemberId ?? group?.Rank ?? 0));
            try
            {
                r =
                    elastic != null
                        ? Trainer.RunElastic(config, train, test, source, elastic, Console.WriteLine, watchers)
                        : Trainer.Run(config, train, test, source, Console.WriteLine, group, watchers);
            }
            catch (Exception e) when (o.Json != null && lead)
            {
                // A failed run still says so in its results, with the error, for whatever collects them.
                File.WriteAllText(
                    o.Json,
                    TrainSummary.Failed(config, e, TrainFlags.Explain(e), group?.Size ?? 1, source).ToJson()
                );
                throw;
            }
            Say("");
            Say("| epoch | train loss | test accuracy | seconds | samples/s |");
            Say("|---|---|---|---|---|");
            foreach (var e in r.Epochs)
                Say(
                    $"| {e.Epoch} | {e.TrainLoss:F4} | {e.TestAccuracy:F4} | {e.Seconds:F1} | {e.SamplesPerSecond:F0} |"
                );
            Say(
                $"final test accuracy {r.FinalTestAccuracy:F4}, best {r.BestTestAccuracy:F4}, {r.Steps} steps in {r.TrainSeconds:F1}s ({r.SamplesPerSecond:F0} samples/s){(r.CheckpointPath != null ? $"; checkpoint {r.CheckpointPath}" : "")}"
            );
            if (r.Elastic is { } er)
                Say(
                    $"elastic: {er.Membership.Count} membership change(s), {er.SamplesSeen} samples committed of "
                        + $"{er.SamplesExpected} (sampler padding included), replicas agree: {er.ReplicaHashAgree}"
                );
            if (group != null)
            {
                var m = r.Metrics;
                Say(
                    $"per worker: compute {m.ComputeSeconds:F1}s, communication {m.CommunicationSeconds:F1}s, waiting "
                        + $"{m.WaitSeconds:F1}s, compression {m.CompressSeconds:F1}s; "
                        + $"{m.BytesPerWorkerPerStep / 1e3:F1} KB on the wire per worker-step; staleness mean "
                        + $"{m.StalenessMean:F2}, max {m.StalenessMax}"
                );
            }
            // In an elastic run whoever is rank 0 at the end writes the results.
            if (o.Json != null && (elastic != null ? elastic.Group.Rank == 0 : lead))
                File.WriteAllText(o.Json, r.ToJson());
        }
        return 0;
    }
}
