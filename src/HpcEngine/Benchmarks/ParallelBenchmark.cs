using System.Diagnostics;
using HpcEngine.Distributed;
using HpcEngine.NN;
using HpcEngine.Optim;
using HpcEngine.Parallel;
using HpcEngine.Parallel.ModelParallel;
using HpcEngine.Training;

namespace HpcEngine.Benchmarks;

/// <summary>How a model is split over the ranks.</summary>
public enum ParallelMode
{
    /// <summary>Tensor parallelism: each layer's weights split over the ranks (Megatron's column/row pairs).</summary>
    Tensor,

    /// <summary>Pipeline parallelism: consecutive layers on consecutive ranks, micro-batches in flight.</summary>
    Pipeline,

    /// <summary>Data parallelism: a replica per rank, gradients averaged.</summary>
    Data,
}

/// <summary>What <see cref="ParallelBenchmark"/> runs: <see cref="Iters"/> SGD steps of <see cref="Model"/>
/// (mlp-wide or gpt-mini) with global batch <see cref="BatchSize"/>, after 3 warm-up steps.</summary>
public sealed record ParallelBenchmarkOptions(
    ParallelMode Mode,
    string Model = "mlp-wide",
    int BatchSize = 128,
    int Iters = 20,
    PipelineSchedule Schedule = PipelineSchedule.OneFOneB,
    int MicroBatches = 8
);

/// <summary>One rank's share: busy and idle seconds over the timed steps, bytes sent per step, and (pipeline) its
/// peak activation memory.</summary>
public sealed record ParallelRankFigures(
    int Rank,
    double BusySeconds,
    double IdleSeconds,
    double BytesPerStep,
    double PeakActivationBytes
);

/// <summary>A parallel benchmark's figures (the same on every rank): the slowest rank's step time, throughput, the
/// pipeline bubble measured and in theory ((p−1)/(m+p−1)), and the bytes all ranks exchanged per step.</summary>
public sealed record ParallelBenchmarkResult(
    ParallelBenchmarkOptions Options,
    int Ranks,
    double StepSeconds,
    double SamplesPerSecond,
    double? BubbleFraction,
    double? BubbleTheoretical,
    double BytesPerStep,
    IReadOnlyList<ParallelRankFigures> PerRank
);

/// <summary>Training steps under tensor, pipeline or data parallelism over every rank of a process group — the setup
/// and measurement of <c>hpcengine bench parallel</c>, callable from C#. Every rank calls <see cref="Run"/>.</summary>
public static class ParallelBenchmark
{
    /// <summary>Checks the options against a world of <paramref name="ranks"/>, naming the bad setting.</summary>
    public static void Validate(ParallelBenchmarkOptions o, int ranks)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (o.Model is not ("mlp-wide" or "gpt-mini"))
            throw new SettingsException(nameof(o.Model), $"{{Model}} must be mlp-wide or gpt-mini, got '{o.Model}'");
        if (o.Model == "gpt-mini" && o.Mode == ParallelMode.Pipeline)
            throw new SettingsException(
                nameof(o.Mode),
                "{Mode} pipeline splits a Sequential model by layers: use {Model} mlp-wide (gpt-mini is not a "
                    + "Sequential)"
            );
        if (o.Iters < 1)
            throw new SettingsException(nameof(o.Iters), $"{{Iters}} must be at least 1, got {o.Iters}");
        if (o.Mode == ParallelMode.Data && o.BatchSize % ranks != 0)
            throw new SettingsException(
                nameof(o.BatchSize),
                $"{{BatchSize}} {o.BatchSize} does not split over {ranks} data-parallel ranks"
            );
        if (o.Mode == ParallelMode.Pipeline && (o.MicroBatches < 1 || o.BatchSize % o.MicroBatches != 0))
            throw new SettingsException(
                nameof(o.BatchSize),
                $"{{BatchSize}} {o.BatchSize} does not split into {o.MicroBatches} {{MicroBatches}}"
            );
    }

    /// <summary>Runs the steps and gathers every rank's figures (a collective).</summary>
    public static ParallelBenchmarkResult Run(IProcessGroup world, ParallelBenchmarkOptions o)
    {
        ArgumentNullException.ThrowIfNull(world);
        Validate(o, world.Size);
        int batch = o.BatchSize,
            ranks = world.Size;
        var gen = new Generator(1);
        bool gpt = o.Model == "gpt-mini";
        var cfg = GptMiniConfig.Default;
        using var x = gpt
            ? Tensor.Randint(0, cfg.Vocab, [batch, cfg.Context], generator: new Generator(5))
            : Tensor.Randn([batch, 1, 28, 28], DType.Float32, new Generator(5));
        using var y = Tensor.Randint(
            0,
            gpt ? cfg.Vocab : 10,
            gpt ? [batch * cfg.Context] : [batch],
            generator: new Generator(6)
        );
        Module? model = null;
        PipelineStage? stage = null;
        DistributedDataParallel? ddp = null;
        switch (o.Mode)
        {
            case ParallelMode.Tensor:
                model = gpt ? new ParallelGptMini(cfg, world, gen) : TensorParallel.MlpWide(world, gen);
                break;
            case ParallelMode.Data:
                model = Models.Create(o.Model, gen);
                ddp = new DistributedDataParallel(model, world);
                break;
            default:
                stage = new PipelineStage((Sequential)Models.Create("mlp-wide", gen), world);
                break;
        }
        // The loss of a slice of the batch: cross-entropy, vocabulary-parallel for the tensor-parallel gpt-mini.
        Tensor Loss(Tensor xs, int first, int count)
        {
            using var logits = model!.Forward(xs);
            if (!gpt)
            {
                using var ys = y.Narrow(0, first, count);
                return F.CrossEntropy(logits, ys);
            }
            using var yt = y.Narrow(0, first * cfg.Context, count * cfg.Context);
            using var flat = logits.Reshape(count * cfg.Context, logits.ShapeArray[2]);
            return o.Mode == ParallelMode.Tensor
                ? VocabParallelCrossEntropy.Compute(flat, yt, world)
                : F.CrossEntropy(flat, yt);
        }
        using var sgd = new Sgd(stage?.Parameters() ?? model!.Parameters(), 0.01, 0.9);
        double busy = 0,
            bubble = 0,
            peak = 0;
        (double Busy, double Total) Step()
        {
            using var scope = new TensorScope();
            var sw = Stopwatch.StartNew();
            double stepBusy;
            if (stage != null)
            {
                var st = stage.Step(stage.IsFirst ? x : null, stage.IsLast ? y : null, o.MicroBatches, o.Schedule);
                stepBusy = st.BusySeconds;
                peak = Math.Max(peak, st.PeakActivationBytes);
            }
            else
            {
                int per = o.Mode == ParallelMode.Data ? batch / ranks : batch,
                    first = o.Mode == ParallelMode.Data ? world.Rank * per : 0;
                using var xs = x.Narrow(0, first, per);
                using var loss = Loss(xs, first, per);
                loss.Backward();
                stepBusy = sw.Elapsed.TotalSeconds; // tp: includes its in-layer allreduces (they cannot overlap here)
                ddp?.Synchronize();
            }
            sgd.Step();
            sgd.ZeroGrad();
            return (stepBusy, sw.Elapsed.TotalSeconds);
        }
        for (int i = 0; i < 3; i++)
            Step();
        world.Barrier().Wait();
        long bytes0 = world.BytesSent;
        var times = new List<double>();
        for (int i = 0; i < o.Iters; i++)
        {
            var (b, t) = Step();
            busy += b;
            bubble += t <= 0 ? 0 : 1 - b / t;
            times.Add(t);
        }
        world.Barrier().Wait();
        double[] mine = [busy, times.Sum(), (world.BytesSent - bytes0) / (double)o.Iters, bubble / o.Iters, peak];
        using var local = Tensor.FromArray(mine);
        using var all = Tensor.Zeros([ranks * mine.Length], DType.Float64);
        world.AllGather(all, local).Wait();
        var v = all.ToArray<double>();
        stage?.Dispose();
        ddp?.Dispose();
        model?.Dispose();
        stage?.Dispose();
        ddp?.Dispose();
        model?.Dispose();
        const int K = 5;
        double stepSeconds = Enumerable.Range(0, ranks).Max(r => v[r * K + 1]) / o.Iters;
        var perRank = Enumerable
            .Range(0, ranks)
            .Select(r => new ParallelRankFigures(
                r,
                v[r * K],
                Math.Max(0, v[r * K + 1] - v[r * K]),
                v[r * K + 2],
                v[r * K + 4]
            ))
            .ToArray();
        bool pipeline = o.Mode == ParallelMode.Pipeline;
        return new ParallelBenchmarkResult(
            o,
            ranks,
            stepSeconds,
            batch / stepSeconds,
            pipeline ? Enumerable.Range(0, ranks).Average(r => v[r * K + 3]) : null,
            pipeline ? PipelineStepStats.TheoreticalBubble(ranks, o.MicroBatches) : null,
            Enumerable.Range(0, ranks).Sum(r => v[r * K + 2]),
            perRank
        );
    }
}
