using System.Diagnostics;
using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;

namespace HpcEngine.Parallel.ModelParallel;

/// <summary>How a pipeline orders the forward and backward passes of its micro-batches.</summary>
public enum PipelineSchedule
{
    /// <summary>GPipe (Huang et al. 2019): every forward, then every backward; m micro-batches of activations
    /// alive.</summary>
    GPipe,

    /// <summary>1F1B (PipeDream-Flush, Narayanan et al. 2021): p − s − 1 warm-up forwards, then one forward and one
    /// backward alternately; at most p − s micro-batches of activations alive on stage s. Same bubble as
    /// GPipe.</summary>
    OneFOneB,
}

/// <summary>What one pipelined step measured on this stage.</summary>
/// <remarks><c>PeakActivationBytes</c>: the most tensor storage alive during the step above what was alive when it
/// began (StoragePool.LiveBytes: process-wide, so per stage when each stage is a process).</remarks>
public sealed record PipelineStepStats(
    double Loss,
    double BusySeconds,
    double TotalSeconds,
    int MaxInFlight,
    long BytesSent,
    long PeakActivationBytes
)
{
    /// <summary>The share of the step this stage sat idle: 1 − busy / total.</summary>
    public double BubbleFraction => TotalSeconds <= 0 ? 0 : Math.Max(0, 1 - BusySeconds / TotalSeconds);

    /// <summary>The schedule's ideal bubble, (p − 1) / (m + p − 1), for equal stages.</summary>
    public static double TheoreticalBubble(int stages, int microBatches) =>
        (stages - 1.0) / (microBatches + stages - 1.0);
}

/// <summary>One stage of a pipeline-parallel model: a contiguous run of a Sequential's layers on one rank of the
/// pipeline group. <see cref="Step"/> runs a training step's forward and backward over micro-batches, exchanging
/// activations (forward) and their gradients (backward) with the neighbouring stages by Send/Recv; parameter
/// gradients accumulate over the micro-batches, ready for the optimizer. The last stage computes the loss (mean
/// cross-entropy of the whole batch, as one process would).</summary>
public sealed class PipelineStage : IDisposable
{
    private const int TagActivationShape = 0x7A01,
        TagActivation = 0x7A02,
        TagGradient = 0x7A03;
    private readonly IProcessGroup _group;

    /// <summary>The layers of this stage.</summary>
    public Sequential Module { get; }

    /// <summary>This stage's index in the pipeline.</summary>
    public int Stage => _group.Rank;

    /// <summary>Stages in the pipeline.</summary>
    public int Stages => _group.Size;

    /// <summary>Whether this stage takes the model's input.</summary>
    public bool IsFirst => Stage == 0;

    /// <summary>Whether this stage computes the loss.</summary>
    public bool IsLast => Stage == Stages - 1;

    /// <summary>Takes ownership of the layers of <paramref name="layers"/> (the whole model, built identically on every
    /// rank): this stage keeps its range and disposes the rest. Rank s of <paramref name="group"/> runs stage s;
    /// <paramref name="partition"/> gives the layers per stage (default: as equal as the count allows).</summary>
    public PipelineStage(Sequential layers, IProcessGroup group, int[]? partition = null)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(group);
        _group = group;
        int n = layers.Layers.Count,
            p = group.Size;
        partition ??= Enumerable.Range(0, p).Select(s => n / p + (s < n % p ? 1 : 0)).ToArray();
        if (partition.Length != p || partition.Sum() != n || partition.Any(c => c <= 0))
            throw new ArgumentException(
                $"pipeline: the partition [{string.Join(", ", partition)}] must give each of the {p} stages at least one of the {n} layers"
            );
        int start = partition.Take(Stage).Sum(),
            count = partition[Stage];
        Module = new Sequential();
        for (int i = 0; i < n; i++)
        {
            if (i >= start && i < start + count)
                Module.Add(layers.Layers[i]);
            else
                layers.Layers[i].Dispose();
        }
    }

    /// <summary>This stage's parameters (what its optimizer steps).</summary>
    public IEnumerable<Tensor> Parameters() => Module.Parameters();

    /// <summary>Runs forward and backward of one batch split into <paramref name="microBatches"/> equal micro-batches
    /// (along the first dimension of input and labels). The first stage needs <paramref name="input"/>, the last
    /// <paramref name="labels"/>; others pass null. Every stage calls it with the same micro-batch count and schedule.
    /// Returns the loss (last stage; NaN elsewhere) and timings.</summary> <remarks>The last stage's <paramref
    /// name="loss"/> of one micro-batch from (output, labels) defaults to <see cref="F.CrossEntropy(Tensor, Tensor, int, double, Reduction)"/>; it must be a
    /// mean over the micro-batch, so that the mean over equal micro-batches is the batch mean.</remarks>
    public PipelineStepStats Step(
        Tensor? input,
        Tensor? labels,
        int microBatches,
        PipelineSchedule schedule,
        Func<Tensor, Tensor, Tensor>? loss = null
    )
    {
        loss ??= (output, target) => F.CrossEntropy(output, target);
        if (IsFirst)
            ArgumentNullException.ThrowIfNull(input);
        if (IsLast)
            ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(microBatches);
        int batch =
            IsFirst ? input!.ShapeArray[0]
            : IsLast ? labels!.ShapeArray[0]
            : -1;
        if (batch >= 0 && batch % microBatches != 0)
            throw new ArgumentException(
                $"pipeline: a batch of {batch} does not split into {microBatches} equal micro-batches"
            );
        int mb = batch / microBatches;
        long bytes0 = _group.BytesSent,
            live0 = StoragePool.LiveBytes;
        StoragePool.ResetPeak();
        var total = Stopwatch.StartNew();
        double busy = 0,
            lossSum = 0;
        int inFlight = 0,
            maxInFlight = 0;
        var stash = new (Tensor? In, Tensor Out)?[microBatches];

        void Forward(int i)
        {
            Tensor x = IsFirst ? input!.Narrow(0, i * mb, mb) : ReceiveActivation();
            long t0 = Stopwatch.GetTimestamp();
            Tensor? leaf = null;
            if (!IsFirst)
            {
                leaf = x;
                x.RequiresGrad_();
            }
            var y = Module.Forward(x);
            if (IsFirst)
                x.Dispose();
            Tensor outT = y;
            if (IsLast)
            {
                using var labelsMb = labels!.Narrow(0, i * mb, mb);
                using var ce = loss(y, labelsMb);
                lossSum += ce.Item() / microBatches;
                outT = Ops.MulScalar(ce, 1.0 / microBatches);
                y.Dispose();
            }
            busy += Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (!IsLast)
                SendActivation(outT);
            stash[i] = (leaf, outT);
            maxInFlight = Math.Max(maxInFlight, ++inFlight);
        }

        void Backward(int i)
        {
            var (leaf, outT) = stash[i]!.Value;
            stash[i] = null;
            using var grad = IsLast ? null : Receive(outT.ShapeArray, TagGradient, Stage + 1);
            long t0 = Stopwatch.GetTimestamp();
            outT.Backward(grad);
            busy += Stopwatch.GetElapsedTime(t0).TotalSeconds;
            outT.Dispose();
            if (leaf != null)
            {
                using var g = leaf.Grad ?? Tensor.ZerosLike(leaf);
                using var c = g.Contiguous();
                _group.Send(c, Stage - 1, TagGradient).Wait();
                leaf.Dispose();
            }
            inFlight--;
        }

        if (schedule == PipelineSchedule.GPipe)
        {
            for (int i = 0; i < microBatches; i++)
                Forward(i);
            for (int i = 0; i < microBatches; i++)
                Backward(i);
        }
        else
        {
            int warmup = Math.Min(Stages - Stage - 1, microBatches);
            for (int i = 0; i < warmup; i++)
                Forward(i);
            for (int i = warmup; i < microBatches; i++)
            {
                Forward(i);
                Backward(i - warmup);
            }
            for (int i = microBatches - warmup; i < microBatches; i++)
                Backward(i);
        }
        return new PipelineStepStats(
            IsLast ? lossSum : double.NaN,
            busy,
            total.Elapsed.TotalSeconds,
            maxInFlight,
            _group.BytesSent - bytes0,
            StoragePool.PeakLiveBytes - live0
        );
    }

    /// <summary>Sends the shape (the receiver cannot know it: batch and layer sizes vary), then the values.</summary>
    private void SendActivation(Tensor y)
    {
        var dims = new long[9];
        dims[0] = y.Rank;
        for (int d = 0; d < y.Rank; d++)
            dims[d + 1] = y.ShapeArray[d];
        using var shape = Tensor.FromArray(dims);
        using var values = y.Detach().Contiguous();
        var a = _group.Send(shape, Stage + 1, TagActivationShape);
        var b = _group.Send(values, Stage + 1, TagActivation);
        a.Wait();
        b.Wait();
    }

    private Tensor ReceiveActivation()
    {
        using var shape = Tensor.Zeros([9], DType.Int64);
        _group.Recv(shape, Stage - 1, TagActivationShape).Wait();
        var dims = shape.ToArray<long>();
        if (dims[0] is < 1 or > 8)
            throw new InvalidDataException(
                $"pipeline stage {Stage}: stage {Stage - 1} sent an activation of rank {dims[0]}"
            );
        return Receive(dims[1..(int)(dims[0] + 1)].Select(d => (int)d).ToArray(), TagActivation, Stage - 1);
    }

    private Tensor Receive(int[] shape, int tag, int from)
    {
        var t = Tensor.Zeros(shape).DetachFromScope();
        _group.Recv(t, from, tag).Wait();
        return t;
    }

    /// <inheritdoc/>
    public void Dispose() => Module.Dispose();
}
