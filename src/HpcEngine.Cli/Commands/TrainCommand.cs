using System.Globalization;
using CommandLine;
using HpcEngine.Backends.Cpu;
using HpcEngine.Datasets;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

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
            ElasticBatch = TrainConfig.ParseElasticBatch(o.ElasticBatch),
            ElasticCommitSteps = o.ElasticCommitSteps,
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
        OutputPaths.CheckFile("--metrics-log", o.MetricsLog);
        if (o.MetricsPort is < 0 or > 65535)
            throw new ArgumentException($"--metrics-port {o.MetricsPort}: use 0..65535");
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
        if (faults != null && CliEnvironment.RestartCount > 0)
        {
            // The plan describes the job's first start: replayed after a restart from a checkpoint, its faults would
            // strike again at the same steps, and the job would never get past them.
            Console.Error.WriteLine(
                $"fault plan: not applied on restart {CliEnvironment.RestartCount} of the job (it describes the first start)"
            );
            faults = null;
        }
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
        // Preemption: SIGTERM (a reclaim notice, or the launcher forwarding one) makes an elastic member finish its step,
        // leave the group so the others go on at once, and exit 0.
        using var onTerm =
            elastic == null
                ? null
                : System.Runtime.InteropServices.PosixSignalRegistration.Create(
                    System.Runtime.InteropServices.PosixSignal.SIGTERM,
                    c =>
                    {
                        c.Cancel = true;
                        elastic.RequestLeave();
                    }
                );
        using HpcEngine.Distributed.IProcessGroup? owned =
            distributed && elastic == null ? HpcEngine.Distributed.ProcessGroups.Create(o.Backend, device, tcp) : null;
        var group = elastic?.Group ?? owned;
        bool lead = group == null || group.Rank == 0;
        void Say(string line)
        {
            if (elastic != null ? elastic.Rank == 0 : lead)
                Console.WriteLine(line);
        }
        var (train, test, source) = DataSources.LoadTraining(o.Data, o.Dataset);
        using (train)
        using (test)
        {
            Say($"data: {source}: {train.Count} training, {test.Count} test samples");
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
            using var monitor = Monitoring.Start(o, distributed, tcp);
            if (monitor != null)
                watchers.Add(monitor.Metrics);
            using var metricsLog =
                o.MetricsLog != null && lead ? new MetricsLogObserver(new StreamWriter(o.MetricsLog)) : null;
            if (metricsLog != null)
                watchers.Add(metricsLog);
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
            if (o.Json != null && (elastic != null ? elastic.Rank == 0 : lead))
                File.WriteAllText(o.Json, r.ToJson());
        }
        return 0;
    }
}
