using System.Collections.Concurrent;

namespace HpcEngine.Data;

/// <summary>How a <see cref="DataLoader"/> batches and transforms samples.</summary>
public sealed record DataLoaderOptions
{
    /// <summary>Samples per batch.</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>A new order every epoch (from <see cref="Seed"/> and the epoch number).</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>The shuffle's seed: the same seed gives the same batches on every run.</summary>
    public ulong Seed { get; init; }

    /// <summary>Drop the last batch when it is smaller than <see cref="BatchSize"/>.</summary>
    public bool DropLast { get; init; }

    /// <summary>Scale x/255 then (x − mean) / std.</summary>
    public double Mean { get; init; } = FashionMnist.Mean;

    /// <summary>See <see cref="Mean"/>.</summary>
    public double Std { get; init; } = FashionMnist.Std;

    /// <summary>Random crop after zero-padding each side by this many pixels (0: off).</summary>
    public int RandomCropPadding { get; init; }

    /// <summary>Mirror half the images left-right.</summary>
    public bool HorizontalFlip { get; init; }

    /// <summary>Batches prepared ahead on a background thread (0: prepare on the caller's thread).</summary>
    public int Prefetch { get; init; } = 2;

    /// <summary>This process's shard of each epoch (see <see cref="Sampler.Shard"/>).</summary>
    public int Rank { get; init; }

    /// <summary>How many shards each epoch is split into (the number of data-parallel ranks).</summary>
    public int WorldSize { get; init; } = 1;
}

/// <summary>One batch: float32 images [B, 1, H, W] and int64 labels [B]. The consumer disposes it.</summary>
public sealed class Batch(Tensor images, Tensor labels, int index) : IDisposable
{
    /// <summary>The images, normalised, [B, 1, H, W].</summary>
    public Tensor Images { get; } = images;

    /// <summary>The class labels [B].</summary>
    public Tensor Labels { get; } = labels;

    /// <summary>Position of the batch in its epoch.</summary>
    public int Index { get; } = index;

    /// <summary>Samples in the batch.</summary>
    public int Size => Labels.NumEl;

    /// <inheritdoc/>
    public void Dispose()
    {
        Images.Dispose();
        Labels.Dispose();
    }
}

/// <summary>Batches an <see cref="ImageDataset"/>: deterministic order from (seed, epoch), this rank's shard,
/// normalisation, optional augmentation (random crop with padding, horizontal flip; random draws keyed by (seed, epoch,
/// position), so a resumed epoch sees the same images), and background prefetch through a bounded queue.</summary>
public sealed class DataLoader(ImageDataset dataset, DataLoaderOptions options)
{
    private readonly ImageDataset _data = dataset ?? throw new ArgumentNullException(nameof(dataset));
    private readonly DataLoaderOptions _o = Validate(options);

    private static DataLoaderOptions Validate(DataLoaderOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (o.BatchSize <= 0)
            throw new ArgumentOutOfRangeException(nameof(o), $"batch size must be positive, got {o.BatchSize}");
        if (o.Std <= 0)
            throw new ArgumentOutOfRangeException(nameof(o), "std must be positive");
        return o;
    }

    /// <summary>Samples in the dataset (every rank's shards together, padding aside).</summary>
    public int DatasetSize => _data.Count;

    /// <summary>Samples this rank sees per epoch.</summary>
    public int SamplesPerEpoch => _o.WorldSize == 1 ? _data.Count : (_data.Count + _o.WorldSize - 1) / _o.WorldSize;

    /// <summary>Batches per epoch.</summary>
    public int BatchesPerEpoch => Batches(SamplesPerEpoch);

    private int Batches(int samples) =>
        _o.DropLast ? samples / _o.BatchSize : (samples + _o.BatchSize - 1) / _o.BatchSize;

    /// <summary>The batches of <paramref name="epoch"/>, starting at batch <paramref name="skipBatches"/> (to
    /// resume); with <paramref name="startSample"/>, the epoch's rest after that many samples were consumed by all
    /// ranks together (after a change of world size: see <see cref="Sampler.Shard"/>).</summary>
    public IEnumerable<Batch> Epoch(int epoch, int skipBatches = 0, int startSample = 0)
    {
        var order = Sampler.Shard(_data.Count, _o.Rank, _o.WorldSize, _o.Shuffle, _o.Seed, epoch, startSample);
        int batches = startSample == 0 ? BatchesPerEpoch : Batches(order.Length);
        if (_o.Prefetch <= 0)
        {
            for (int b = skipBatches; b < batches; b++)
                yield return Make(order, b, epoch);
            yield break;
        }
        using var queue = new BlockingCollection<Batch>(_o.Prefetch);
        using var cancel = new CancellationTokenSource();
        Exception? error = null;
        var producer = Task.Run(() =>
        {
            try
            {
                for (int b = skipBatches; b < batches && !cancel.IsCancellationRequested; b++)
                {
                    var batch = Make(order, b, epoch);
                    try
                    {
                        queue.Add(batch, cancel.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        batch.Dispose();
                        break;
                    }
                }
            }
            catch (Exception e)
            {
                error = e;
            }
            finally
            {
                queue.CompleteAdding();
            }
        });
        try
        {
            foreach (var batch in queue.GetConsumingEnumerable())
                yield return batch;
            if (error != null)
                throw new InvalidOperationException($"data loading failed: {error.Message}", error);
        }
        finally
        {
            cancel.Cancel();
            producer.Wait();
            while (queue.TryTake(out var left))
                left.Dispose();
        }
    }

    private unsafe Batch Make(int[] order, int b, int epoch)
    {
        int start = b * _o.BatchSize,
            count = Math.Min(_o.BatchSize, order.Length - start);
        int h = _data.Images.Shape[1],
            w = _data.Images.Shape[2],
            plane = h * w;
        var x = Tensor.Zeros([count, 1, h, w]).DetachFromScope();
        var y = Tensor.Empty([count], DType.Int64).DetachFromScope();
        byte* src = _data.Images.Ptr<byte>();
        long* labels = _data.Labels.Ptr<long>();
        float* dst = x.Ptr<float>();
        long* ly = y.Ptr<long>();
        float scale = (float)(1.0 / (255 * _o.Std)),
            shift = (float)(-_o.Mean / _o.Std);
        int pad = _o.RandomCropPadding;
        for (int i = 0; i < count; i++)
        {
            int s = order[start + i];
            ly[i] = labels[s];
            byte* img = src + (long)s * plane;
            float* o = dst + (long)i * plane;
            int dy = 0,
                dx = 0;
            bool flip = false;
            if (pad > 0 || _o.HorizontalFlip)
            {
                // One Philox block per (epoch, position): independent of batch size and thread.
                ulong counter = ((ulong)(uint)epoch << 32) | (uint)(start + i);
                var (r0, r1, r2, _) = Philox.Block(
                    (uint)counter,
                    (uint)(counter >> 32),
                    0xA11C,
                    0,
                    (uint)(_o.Seed + 1),
                    (uint)((_o.Seed + 1) >> 32)
                );
                if (pad > 0)
                {
                    dy = (int)(r0 % (uint)(2 * pad + 1)) - pad;
                    dx = (int)(r1 % (uint)(2 * pad + 1)) - pad;
                }
                flip = _o.HorizontalFlip && (r2 & 1) != 0;
            }
            for (int r = 0; r < h; r++)
            for (int c = 0; c < w; c++)
            {
                int sr = r + dy,
                    sc0 = c + dx;
                int sc = flip ? w - 1 - sc0 : sc0;
                // Outside the source (the zero padding) normalises like a black pixel.
                float v = (uint)sr < (uint)h && (uint)sc0 < (uint)w ? img[sr * w + sc] : 0;
                o[r * w + c] = v * scale + shift;
            }
        }
        return new Batch(x, y, b);
    }
}
