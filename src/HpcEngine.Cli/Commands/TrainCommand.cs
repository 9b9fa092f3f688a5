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

    [Option("data", HelpText = "Fashion-MNIST directory (else HPCENGINE_DATA, Debian's package, then the embedded subset).")]
    public string? Data { get; set; }

    [Option("checkpoint-dir", HelpText = "Write a checkpoint here after every epoch.")]
    public string? CheckpointDir { get; set; }

    [Option("resume", Default = false, HelpText = "Continue from the checkpoint in --checkpoint-dir.")]
    public bool Resume { get; set; }

    [Option("max-steps", Default = 0L, HelpText = "Stop after this many optimizer steps in total, checkpointing there (0: no limit).")]
    public long MaxSteps { get; set; }

    [Option("threads", HelpText = "CPU kernel threads (default: all cores). Results are bitwise reproducible for a fixed count.")]
    public int? Threads { get; set; }

    [Option("json", HelpText = "Write the summary as JSON to this file (rank 0).")]
    public string? Json { get; set; }

    [Option("strategy", Default = "sync", HelpText = "With several ranks: sync | zero1 | ssp:K | ssp:inf | ssp:K:S (the last S ranks are dedicated servers) | localsgd:H | diloco:H")]
    public string Strategy { get; set; } = "sync";

    [Option("compress", HelpText = "With several ranks and sync, localsgd or diloco: none | fp16 | bf16 | topk:F[:W] (W warm-up steps) | randomk:F | int8 | sign | powersgd:R | dgc:F (sgd only: the momentum moves into the codec)")]
    public string? Compress { get; set; }

    [Option("eval-every", Default = 0, HelpText = "Also evaluate every N optimizer steps (points of the accuracy-against-time curve).")]
    public int EvalEvery { get; set; }

    [Option("trace-dir", HelpText = "Write each rank's Chrome trace (trace-rankR.json) here.")]
    public string? TraceDir { get; set; }

    [Option("device", Default = "cpu", HelpText = "cpu (default), cuda or cuda:N: train on that device (one process for now).")]
    public string Device { get; set; } = "cpu";

    [Option("amp", Default = "none", HelpText = "Mixed precision: none or bf16 (matrix products on bf16 operands, fp32 accumulation and master weights).")]
    public string Amp { get; set; } = "none";

    [Option("cuda-graph", HelpText = "With --device cuda in one process: capture the training step in a CUDA graph and replay it (one launch per step).")]
    public bool CudaGraph { get; set; }

    [Option("backend", Default = "tcp", HelpText = "Collectives for data-parallel runs: tcp (GPU tensors are staged through host memory) or nccl (with --device cuda: each rank on cuda:LOCAL_RANK unless --device names one).")]
    public string Backend { get; set; } = "tcp";

    [Option("distributed", HelpText = "Data-parallel over the ranks of the launcher's environment (default: on when WORLD_SIZE and the others are set).")]
    public bool? Distributed { get; set; }
}

internal static class TrainCommand
{
    public static int Run(TrainOptions o)
    {
        var d = TrainConfig.For(o.Model);
        string optimizer = o.Optimizer ?? d.Optimizer;
        var config = d with
        {
            Epochs = o.Epochs ?? d.Epochs,
            BatchSize = o.BatchSize ?? d.BatchSize,
            Optimizer = optimizer,
            Lr = o.Lr ?? (optimizer == "sgd" ? 0.05 : 1e-3),
            Momentum = o.Momentum ?? d.Momentum,
            WeightDecay = o.WeightDecay ?? d.WeightDecay,
            WarmupSteps = o.WarmupSteps,
            ClipNorm = o.ClipNorm,
            GradAccumulation = o.GradAccumulation,
            Augment = o.Augment,
            Seed = o.Seed,
            CheckpointDir = o.CheckpointDir,
            Resume = o.Resume,
            MaxSteps = o.MaxSteps,
            Strategy = o.Strategy,
            Compress = o.Compress,
            EvalEverySteps = o.EvalEvery,
            TraceDir = o.TraceDir,
            Device = o.Device,
            Amp = o.Amp,
            CudaGraph = o.CudaGraph,
        };
        config.Validate();
        var device = HpcEngine.Device.Parse(o.Device);
        if (o.Backend is not ("tcp" or "nccl")) throw new ArgumentException($"--backend must be tcp or nccl, got '{o.Backend}'");
        if (o.Backend == "nccl" && device.Type != DeviceType.Cuda) throw new ArgumentException("--backend nccl needs --device cuda (NCCL reduces GPU memory)");
        bool distributed = o.Distributed ?? (Environment.GetEnvironmentVariable("WORLD_SIZE") != null || Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") != null);
        HpcEngine.Cuda.CudaContext? cuda = null;
        if (device.Type == DeviceType.Cuda)
        {
            // Under a launcher, "cuda" means this rank's own GPU (cuda:LOCAL_RANK), as torchrun users expect.
            if (distributed && o.Device == "cuda") device = HpcEngine.Device.Cuda(HpcEngine.Distributed.DistributedEnvironment.Resolve().LocalRank);
            cuda = HpcEngine.Cuda.CudaBackend.Register(device.Index);
            config = config with { Device = device.ToString() };
        }
        if (o.Threads is { } t) CpuThreads.Count = t;
        using HpcEngine.Distributed.IProcessGroup? group = !distributed ? null
            : o.Backend == "nccl" ? HpcEngine.Cuda.NcclProcessGroup.InitFromEnvironment(cuda!)
            : device.Type != DeviceType.Cpu
                // GPU tensors over TCP: staged through host memory (NCCL, where available, reduces them in place).
                ? new HpcEngine.Distributed.HostStagedProcessGroup(HpcEngine.Distributed.ProcessGroups.InitFromEnvironment())
                : HpcEngine.Distributed.ProcessGroups.InitFromEnvironment();
        bool lead = group == null || group.Rank == 0;
        void Say(string line) { if (lead) Console.WriteLine(line); }
        var (train, test, source) = DataSources.LoadFashionMnist(o.Data);
        using (train)
        using (test)
        {
            Say($"data: {source}: {train.Count} training, {test.Count} test images");
            Say($"model {config.Model}, optimizer {config.Optimizer} lr {config.Lr.ToString(CultureInfo.InvariantCulture)} (cosine), batch {config.BatchSize}{(group != null ? $" per rank × {group.Size} ranks (data parallel over {group.Backend}, strategy {config.Strategy}{(config.Compress != null ? ", compression " + config.Compress : "")})" : "")}, {config.Epochs} epochs, seed {config.Seed}, {(device.Type == DeviceType.Cpu ? $"{CpuThreads.Count} threads" : $"on {device}")}");
            var r = Trainer.Run(config, train, test, source, Console.WriteLine, group);
            Say("");
            Say("| epoch | train loss | test accuracy | seconds | samples/s |");
            Say("|---|---|---|---|---|");
            foreach (var e in r.Epochs)
                Say($"| {e.Epoch} | {e.TrainLoss:F4} | {e.TestAccuracy:F4} | {e.Seconds:F1} | {e.SamplesPerSecond:F0} |");
            Say($"final test accuracy {r.FinalTestAccuracy:F4}, best {r.BestTestAccuracy:F4}, {r.Steps} steps in {r.TrainSeconds:F1}s ({r.SamplesPerSecond:F0} samples/s){(r.CheckpointPath != null ? $"; checkpoint {r.CheckpointPath}" : "")}");
            if (group != null)
            {
                var m = r.Metrics;
                Say($"per worker: compute {m.ComputeSeconds:F1}s, communication {m.CommunicationSeconds:F1}s, waiting {m.WaitSeconds:F1}s, compression {m.CompressSeconds:F1}s; {m.BytesPerWorkerPerStep / 1e3:F1} KB on the wire per worker-step; staleness mean {m.StalenessMean:F2}, max {m.StalenessMax}");
            }
            if (o.Json != null && lead) File.WriteAllText(o.Json, r.ToJson());
        }
        return 0;
    }
}
