using System.Diagnostics;
using System.Text.Json;
using HpcEngine.Autograd;
using HpcEngine.Data;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Training;

/// <summary>Single-process supervised training on an image dataset: the loop the CLI, the example program and (later)
/// the data-parallel strategies share. Deterministic for a fixed seed and kernel thread count (the CPU kernels
/// partition work statically), which is what exact resume relies on.</summary>
public static class Trainer
{
    /// <summary>Builds the optimizer a config names over <paramref name="parameters"/>.</summary>
    public static Optimizer MakeOptimizer(TrainConfig c, IEnumerable<Tensor> parameters)
    {
        ArgumentNullException.ThrowIfNull(c);
        return c.Optimizer switch
        {
            "sgd" => new Sgd(parameters, c.Lr, c.Momentum, weightDecay: c.WeightDecay),
            "adam" => new Adam(parameters, c.Lr, weightDecay: c.WeightDecay),
            "adamw" => new AdamW(parameters, c.Lr, weightDecay: c.WeightDecay == 0 ? 0.01 : c.WeightDecay),
            _ => throw new ArgumentException($"unknown optimizer '{c.Optimizer}'"),
        };
    }

    /// <summary>Trains per <paramref name="config"/>; <paramref name="log"/> receives the progress lines (a
    /// <see cref="LineObserver"/>), <paramref name="observers"/> the run's events. With a <paramref name="group"/>,
    /// training is data-parallel (DistributedDataParallel): each rank takes its shard of every epoch with
    /// <c>BatchSize</c> samples per step (the global batch is BatchSize × ranks); rank 0 logs, evaluates and
    /// checkpoints, and only rank 0's observers hear of progress, evaluations and epochs (every rank's hear of steps).</summary>
    public static TrainResult Run(TrainConfig config, ImageDataset train, ImageDataset test, string dataSource, Action<string>? log = null, IProcessGroup? group = null,
        IEnumerable<ITrainingObserver>? observers = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        bool lead = group == null || group.Rank == 0;
        var watchers = (observers ?? []).ToList();
        if (log != null && lead) watchers.Insert(0, new LineObserver(log));
        void Tell(Action<ITrainingObserver> e)
        {
            if (lead) foreach (var w in watchers) e(w);
        }
        void Message(string m) => Tell(w => w.OnMessage(m));
        var gen = new Generator(config.Seed);
        using var model = Models.Create(config.Model, gen);
        var device = Device.Parse(config.Device);
        if (device.Type != DeviceType.Cpu)
        {
            model.To(device); // before the optimizer, whose state is created where the parameters are, and before DDP
        }
        // DGC applies the momentum itself (momentum correction): the optimizer then runs without it.
        var codec = config.Compress == null ? null : Compression.GradientCodec.Create(config.Compress, config.Seed);
        if (codec is Compression.DgcCodec dgc) codec = new Compression.DgcCodec(dgc.Fraction, config.Momentum);
        var optimizerConfig = codec is Compression.DgcCodec ? config with { Momentum = 0 } : config;
        using var strategy = group != null && group.Size > 1
            ? Parallel.TrainingStrategies.Create(config.Strategy, model, group, ps => MakeOptimizer(optimizerConfig, ps), codec)
            : null;
        if (strategy == null && (config.Strategy != "sync" || config.Compress != null))
            throw new ArgumentException($"--strategy {config.Strategy}{(config.Compress != null ? $" and --compress {config.Compress}" : "")} need several ranks (run under hpcengine launch, mpirun or srun): in one process they would have no effect");
        var ddp = (strategy as Parallel.SyncStrategy)?.Ddp;
        // A parameter server with dedicated server ranks: those ranks serve instead of training, and the data is split
        // over the workers only.
        var ps = strategy as Parallel.ParameterServerStrategy;
        int workers = ps?.Workers ?? group?.Size ?? 1, workerRank = group?.Rank ?? 0;
        using var ownOpt = strategy == null ? MakeOptimizer(config, model.Parameters()) : null;
        var opt = strategy?.Optimizer ?? ownOpt!;
        var loader = new DataLoader(train, new DataLoaderOptions
        {
            BatchSize = config.BatchSize,
            Seed = config.Seed,
            RandomCropPadding = config.Augment ? 2 : 0,
            HorizontalFlip = config.Augment,
            Rank = workerRank < workers ? workerRank : 0,
            WorldSize = workers,
        });
        int perEpoch = loader.BatchesPerEpoch;
        long stepsPerEpoch = (perEpoch + config.GradAccumulation - 1) / config.GradAccumulation;
        var schedule = new CosineWithWarmup(config.Lr, stepsPerEpoch * config.Epochs, config.WarmupSteps);
        string configJson = JsonSerializer.Serialize(config);
        // The fingerprint hashes the training set: computed only where checkpoints are written or read.
        var fingerprint = new Lazy<RunFingerprint>(() => RunFingerprint.Of(config, workers, train));
        var start = ResumePoint.Plan(config, () => fingerprint.Value, strategy == null || (strategy is Parallel.SyncStrategy && !HasRankState(strategy)), perEpoch, stepsPerEpoch, Message);
        var (startEpoch, skip, step) = (start.Epoch, start.Skip, start.Step);
        if (start.State is { } saved)
        {
            Checkpoint.Load(start.Directory!, model, opt);
            if (strategy != null && HasRankState(strategy))
            {
                var (tensors, scalars) = Checkpoint.LoadRankState(start.Directory!, group!.Rank, saved.Step);
                try { strategy.LoadStateDict(tensors, scalars); }
                finally { foreach (var t in tensors.Values) t.Dispose(); }
            }
            gen.ManualSeed(saved.RngSeed);
            gen.Offset = saved.RngOffset;
            Message($"resumed from {start.Directory} at epoch {startEpoch + 1}, batch {skip}, step {step}");
        }

        // Straggler injection (TrainConfig.Straggler, "rank:factor"): that rank sleeps (factor − 1) × its compute time
        // after each step's forward and backward, as a slower machine would take, so strategies can be compared with one.
        double slow = StragglerFactor(group?.Rank ?? 0, group?.Size ?? 1, config.Straggler);
        Diagnostics.TraceRecorder? trace = config.TraceDir != null ? new Diagnostics.TraceRecorder(group?.Rank ?? 0) : null;
        var epochs = new List<EpochResult>();
        var losses = new List<double>();
        var curve = new List<(double, double)>();
        var total = Stopwatch.StartNew();
        long samples = 0, bytesAtStart = group?.BytesSent ?? 0, workerSteps = 0;
        double best = double.NaN, last = double.NaN, evalSeconds = 0, computeSeconds = 0;
        long evaluatedAt = -1, savedAt = -1;
        string? ckpt = null;
        bool stopped = false;
        var lastLog = Stopwatch.StartNew();
        // Only rank 0 evaluates; the curve's wall time leaves evaluation out. Under strategies that keep the ranks in
        // step, the others wait for it at a barrier whose time is left out of their clocks too (otherwise it would show
        // up as their communication time). Parameter-server workers do not wait: they run on while rank 0 evaluates.
        bool barrierAtEval = group != null && group.Size > 1 && strategy is not Parallel.ParameterServerStrategy;
        double EvaluatePoint()
        {
            long t0 = Stopwatch.GetTimestamp();
            double acc = lead ? Evaluate(model, test).Accuracy : double.NaN;
            if (barrierAtEval) group!.Barrier().Wait();
            double secs = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            trace?.Add(lead ? "evaluate" : "wait for evaluation", "evaluate", t0, secs);
            if (lead) curve.Add((total.Elapsed.TotalSeconds - evalSeconds - secs, acc));
            evalSeconds += secs;
            evaluatedAt = step;
            if (lead) Tell(w => w.OnEvaluation(new EvaluationEvent(step, curve[^1].Item1, acc)));
            if (lead) best = double.IsNaN(best) ? acc : Math.Max(best, acc);
            return acc;
        }
        // Every rank writes its own strategy state (codec residuals, outer optimizer, shard optimizer), then rank 0
        // writes the model and its optimizer and switches checkpoint.json — after a barrier, so the pointer never
        // names a step whose per-rank files are not all on disk.
        void SaveCheckpoint(int nextEpoch, int batchInEpoch)
        {
            if (config.CheckpointDir == null || savedAt == step) return;
            savedAt = step;
            if (strategy != null && HasRankState(strategy))
            {
                var (tensors, scalars) = strategy.StateDict();
                try { Checkpoint.SaveRankState(config.CheckpointDir, group!.Rank, step, tensors, scalars); }
                finally { foreach (var t in tensors.Values) t.Dispose(); }
                group.Barrier().Wait();
            }
            if (lead) ckpt = Checkpoint.Save(config.CheckpointDir, model, opt, new TrainingState(nextEpoch, batchInEpoch, step, gen.Seed, gen.Offset, configJson, fingerprint.Value.ToJson()));
        }
        if (ps is { IsWorker: false })
        {
            foreach (var w in watchers) w.OnMessage($"rank {group!.Rank}: dedicated parameter server for {ps.Workers} workers"); // a server rank is never rank 0
            stopped = true;
            ps.ServeUntilDone();
        }
        // CUDA-graph mode: static input buffers on the device, the step captured on the first full batch.
        if (config.CudaGraph && (strategy != null || slow > 1))
            throw new ArgumentException("--cuda-graph trains one process (no --strategy across ranks, no straggler emulation)");
        using var g = new GraphedTraining();
        void GraphStep()
        {
            using var scope = new TensorScope();
            using var amp = config.Amp == "bf16" ? Autograd.Autocast.Bf16() : null;
            opt.ZeroGrad();
            var loss = F.CrossEntropy(model.Forward(g.Images!), g.Labels!);
            loss.Backward();
            opt.Step();
            g.Loss!.CopyFrom(loss);
        }
        double GraphedStep(Data.Batch batch)
        {
            g.Images ??= Tensor.Empty(batch.Images.ShapeArray, batch.Images.DType, device).DetachFromScope();
            g.Labels ??= Tensor.Empty(batch.Labels.ShapeArray, batch.Labels.DType, device).DetachFromScope();
            g.Loss ??= Tensor.Empty([], DType.Float32, device).DetachFromScope();
            g.Images.CopyFrom(batch.Images);
            g.Labels.CopyFrom(batch.Labels);
            schedule.Apply(opt, step); // the device learning rate, read by the replayed kernels
            if (g.Graph == null) g.Graph = Backends.DeviceBackends.For(device).CaptureGraph(GraphStep, warmup: 1); // the warm-up is this batch's step
            else g.Graph.Replay();
            // A replay runs no host code, so the optimizer's step count is set from the trainer's (one step per batch).
            opt.SetStepCount(step + 1);
            // As after an eager step: the handles go (the graph keeps writing its own gradient memory), so an eager
            // step on a short batch starts from no gradient instead of accumulating onto the replay's.
            opt.ZeroGrad();
            return g.Loss.Item();
        }
        void WriteTrace()
        {
            if (trace == null) return;
            Directory.CreateDirectory(config.TraceDir!);
            trace.Write(Path.Combine(config.TraceDir!, $"trace-rank{trace.Rank}.json"));
            trace = null;
        }
        // A failed run still leaves its traces: they show where the time went up to the failure.
        double trainSecs;
        RunMetrics metrics;
        try
        {
            for (int epoch = startEpoch; epoch < config.Epochs && !stopped; epoch++)
            {
                model.Train();
                var timer = Stopwatch.StartNew();
                double lossSum = 0, epochEval = evalSeconds;
                int lossCount = 0, micro = 0, epochSamples = 0;
                foreach (var batch in loader.Epoch(epoch, epoch == startEpoch ? skip : 0))
                {
                    using (batch)
                    using (var scope = new TensorScope())
                    {
                        long computeStart = Stopwatch.GetTimestamp();
                        bool graphed = config.CudaGraph && batch.Size == config.BatchSize; // a short last batch runs eagerly
                        double l;
                        bool stepNow;
                        if (graphed)
                        {
                            l = GraphedStep(batch);
                            stepNow = true;
                        }
                        else
                        {
                            using var images = batch.Images.To(device);
                            using var labels = batch.Labels.To(device);
                            using var amp = config.Amp == "bf16" ? Autograd.Autocast.Bf16() : null; // forward and backward
                            using var logits = model.Forward(images);
                            using var loss = F.CrossEntropy(logits, labels);
                            stepNow = ++micro >= config.GradAccumulation || batch.Index == perEpoch - 1;
                            // Accumulation micro-batches do not communicate; the stepping one averages the total.
                            using (!stepNow ? ddp?.NoSync() : null)
                            {
                                if (config.GradAccumulation > 1)
                                {
                                    using var scaled = Ops.MulScalar(loss, 1.0 / config.GradAccumulation);
                                    scaled.Backward();
                                }
                                else loss.Backward();
                            }
                            // Read after the backward is queued: on a GPU the host does not wait between forward and backward.
                            l = loss.Item();
                        }
                        if (!double.IsFinite(l) && !config.AllowDivergence) throw new TrainingDivergedException(step + 1, epoch + 1, batch.Index + 1, l);
                        double computed = Stopwatch.GetElapsedTime(computeStart).TotalSeconds;
                        trace?.Add("forward+backward", "compute", computeStart, computed);
                        if (slow > 1)
                        {
                            long sleepStart = Stopwatch.GetTimestamp();
                            Thread.Sleep(TimeSpan.FromSeconds(computed * (slow - 1)));
                            trace?.Add("straggler delay", "compute", sleepStart, Stopwatch.GetElapsedTime(sleepStart).TotalSeconds);
                        }
                        computeSeconds += Stopwatch.GetElapsedTime(computeStart).TotalSeconds;
                        lossSum += l;
                        lossCount++;
                        epochSamples += batch.Size;
                        if (!stepNow) continue;
                        micro = 0;
                        if (!graphed)
                        {
                            if (config.ClipNorm > 0 && strategy == null) GradClip.ClipGradNorm(model.Parameters(), config.ClipNorm);
                            schedule.Apply(opt, step);
                            if (strategy != null) StepTraced(strategy, trace);
                            else
                            {
                                opt.Step();
                                opt.ZeroGrad();
                            }
                        }
                        step++;
                        workerSteps++;
                        losses.Add(l);
                        foreach (var w in watchers) w.OnStep(new StepEvent(step, epoch + 1, batch.Index + 1, l));
                        if (config.EvalEverySteps > 0 && step % config.EvalEverySteps == 0 && (lead || barrierAtEval)) EvaluatePoint();
                        if (config.SaveEverySteps > 0 && step % config.SaveEverySteps == 0)
                            SaveCheckpoint(batch.Index + 1 < perEpoch ? epoch : epoch + 1, batch.Index + 1 < perEpoch ? batch.Index + 1 : 0);
                    }
                    if (lastLog.Elapsed.TotalSeconds >= 2)
                    {
                        lastLog.Restart();
                        double rate = epochSamples / timer.Elapsed.TotalSeconds;
                        double remaining = (double)(config.Epochs - epoch) * loader.SamplesPerEpoch - epochSamples;
                        // Under a strategy, also what communication costs so far: bytes handed to collectives per step and
                        // the error-feedback residual still waiting to be sent.
                        double? kb = strategy == null || workerSteps == 0 ? null : strategy.BytesCommunicated / (double)workerSteps / 1e3;
                        var progress = new ProgressEvent(epoch + 1, config.Epochs, batch.Index + 1, perEpoch, lossSum / lossCount, rate, kb,
                            strategy?.ResidualNorm ?? 0, TimeSpan.FromSeconds(remaining / Math.Max(rate, 1)));
                        Tell(w => w.OnProgress(progress));
                    }
                    if (config.MaxSteps > 0 && step >= config.MaxSteps)
                    {
                        stopped = true;
                        SaveCheckpoint(batch.Index + 1 < perEpoch ? epoch : epoch + 1, batch.Index + 1 < perEpoch ? batch.Index + 1 : 0);
                        break;
                    }
                }
                samples += epochSamples;
                if (stopped) break;
                int world = workers;
                double acc = lead || barrierAtEval ? EvaluatePoint() : double.NaN;
                double secs = timer.Elapsed.TotalSeconds - (evalSeconds - epochEval);
                last = acc;
                var epochResult = new EpochResult(epoch + 1, lossSum / Math.Max(lossCount, 1), acc, secs, epochSamples * world / secs);
                epochs.Add(epochResult);
                Tell(w => w.OnEpoch(new EpochEvent(epochResult, config.Epochs, world, strategy?.Name)));
                SaveCheckpoint(epoch + 1, 0);
            }
            trainSecs = total.Elapsed.TotalSeconds - evalSeconds;
            metrics = RunMetrics.Single(computeSeconds);
            if (strategy != null && group != null)
            {
                // A parameter server's replicas hold what they last pulled: gather the final shards and evaluate those.
                strategy.Finish();
                if (ps != null && lead && ps.IsWorker) last = EvaluatePoint();
                metrics = RunMetrics.Gather(group, strategy, config.Compress ?? "none", computeSeconds, group.BytesSent - bytesAtStart, workerSteps);
            }
            // A run that stopped between evaluations (--max-steps), or resumed an already finished one, evaluates where it
            // stands (after the strategy's final exchange): the reported accuracy is always measured, never a placeholder.
            if (evaluatedAt != step && ps == null && (lead || barrierAtEval)) last = EvaluatePoint();
        }
        catch
        {
            WriteTrace();
            throw;
        }
        WriteTrace();
        return new TrainResult(config, dataSource, epochs, losses, last, best, trainSecs, samples * workers / Math.Max(trainSecs, 1e-9), step, ckpt, curve, metrics);
    }

    /// <summary>Runs a strategy's step and records it in the trace, split by what the strategy reports: compression,
    /// communication, waiting on others, and the rest (the optimizer). The split is laid end to end inside the step's
    /// span — the parts' durations are measured, their order within the step is nominal.</summary>
    private static void StepTraced(Parallel.ITrainingStrategy strategy, Diagnostics.TraceRecorder? trace)
    {
        if (trace == null) { strategy.Step(); return; }
        double comm = strategy.CommunicationSeconds, wait = strategy.WaitSeconds, compress = strategy.CompressSeconds;
        long start = Stopwatch.GetTimestamp();
        strategy.Step();
        double total = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var parts = new (string Name, string Category, double Seconds)[]
        {
            ("compress", "compression", strategy.CompressSeconds - compress),
            ("communicate", "communication", strategy.CommunicationSeconds - comm),
            ("wait for others", "wait", strategy.WaitSeconds - wait),
        };
        long at = start;
        double rest = total;
        foreach (var (name, cat, secs) in parts)
        {
            double s = Math.Clamp(secs, 0, rest);
            trace.Add(name, cat, at, s);
            at += (long)(s * Stopwatch.Frequency);
            rest -= s;
        }
        trace.Add("optimizer", "compute", at, rest);
    }

    /// <summary>Whether a strategy keeps per-rank state beyond the model: all but sync without a codec.</summary>
    private static bool HasRankState(Parallel.ITrainingStrategy strategy) =>
        strategy is not Parallel.SyncStrategy sync || sync.Ddp.Codec != null;

    /// <summary>The slow-down factor a straggler spec ("rank:factor", e.g. "1:1.5") sets for <paramref name="rank"/>
    /// (1 when the spec is null or empty, or for other ranks).</summary>
    public static double StragglerFactor(int rank, string? spec) => StragglerFactor(rank, int.MaxValue, spec);

    /// <summary>As <see cref="StragglerFactor(int, string?)"/>, and an error when the spec names a rank that a world of
    /// <paramref name="worldSize"/> does not have (a straggler that would silently not be applied).</summary>
    public static double StragglerFactor(int rank, int worldSize, string? spec)
    {
        if (string.IsNullOrEmpty(spec)) return 1;
        var p = spec.Split(':');
        if (p.Length != 2 || !int.TryParse(p[0], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int r) || r < 0
            || !double.TryParse(p[1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double f) || !(f >= 1) || !double.IsFinite(f))
            throw new ArgumentException($"straggler '{spec}' (HPCENGINE_STRAGGLER, bench --straggler) must be RANK:FACTOR with FACTOR >= 1, e.g. 1:1.5");
        if (r >= worldSize) throw new ArgumentException($"straggler '{spec}' (HPCENGINE_STRAGGLER, bench --straggler) names rank {r}, but the job has {worldSize} rank(s) (0..{worldSize - 1})");
        return r == rank ? f : 1;
    }

    /// <summary>Accuracy (overall and per class) of <paramref name="model"/> in eval mode; the model's mode is restored.</summary>
    public static (double Accuracy, double[] PerClass) Evaluate(Module model, ImageDataset data, int batchSize = 1000)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        bool wasTraining = model.Training;
        model.Eval();
        var correct = new long[data.Classes];
        var seen = new long[data.Classes];
        var loader = new DataLoader(data, new DataLoaderOptions { BatchSize = batchSize, Shuffle = false, Prefetch = 0 });
        using (GradMode.NoGrad())
            foreach (var batch in loader.Epoch(0))
                using (batch)
                using (var scope = new TensorScope())
                {
                    var device = model.Parameters().FirstOrDefault()?.Device ?? Device.Cpu;
                    using var images = batch.Images.To(device);
                    using var logits = model.Forward(images).To(Device.Cpu); // argmax on the host: a small copy
                    var pred = logits.ArgMax(1).ToArray<long>();
                    var y = batch.Labels.ToArray<long>();
                    for (int i = 0; i < y.Length; i++)
                    {
                        seen[y[i]]++;
                        if (pred[i] == y[i]) correct[y[i]]++;
                    }
                }
        model.Train(wasTraining);
        long total = seen.Sum();
        return (total == 0 ? 0 : (double)correct.Sum() / total, correct.Zip(seen, (c, s) => s == 0 ? 0 : (double)c / s).ToArray());
    }
}
