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

    /// <summary>Pixels are scaled x/255 then (x − mean) / std, unless the dataset has its own
    /// <see cref="Dataset.Normalization"/>.</summary>
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

/// <summary>One batch: float32 inputs [B, C, H, W] (images) or [B, F] (features) and int64 labels [B]. The consumer
/// disposes it.</summary>
public sealed class Batch(Tensor inputs, Tensor labels, int index) : IDisposable
{
    /// <summary>The inputs: images normalised, [B, C, H, W], or feature vectors [B, F].</summary>
    public Tensor Inputs { get; } = inputs;

    /// <summary>The class labels [B].</summary>
    public Tensor Labels { get; } = labels;

    /// <summary>Position of the batch in its epoch.</summary>
    public int Index { get; } = index;

    /// <summary>Samples in the batch.</summary>
    public int Size => Labels.NumEl;

    /// <inheritdoc/>
    public void Dispose()
    {
        Inputs.Dispose();
        Labels.Dispose();
    }
}

/// <summary>Batches a <see cref="Dataset"/>: deterministic order from (seed, epoch) (<see cref="Dataset.Order"/>), this
/// rank's shard, normalisation of pixels, optional augmentation of images (random crop with padding, horizontal flip; random draws keyed by (seed, epoch,
/// position), so a resumed epoch sees the same images), and background prefetch through a bounded queue.</summary>
public sealed class DataLoader(Dataset dataset, DataLoaderOptions options)
{
    private readonly Dataset _data = dataset ?? throw new ArgumentNullException(nameof(dataset));
    private readonly DataLoaderOptions _o = Validate(dataset, options);

    private static DataLoaderOptions Validate(Dataset dataset, DataLoaderOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        if ((o.RandomCropPadding > 0 || o.HorizontalFlip) && !dataset.IsPixels)
            throw new ArgumentException(
                "augmentation (random crop, horizontal flip) applies to images; this dataset holds feature vectors"
            );
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
        var order = Sampler.Deal(_data.Order(_o.Shuffle, _o.Seed, epoch), _o.Rank, _o.WorldSize, startSample);
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

    private Batch Make(int[] order, int b, int epoch)
    {
        int start = b * _o.BatchSize,
            count = Math.Min(_o.BatchSize, order.Length - start);
        int[] shape = [count, .. _data.SampleShape];
        var x = Tensor.Empty(shape, DType.Float32).DetachFromScope();
        var y = Tensor.Empty([count], DType.Int64).DetachFromScope();
        try
        {
            if (_data.IsPixels)
                FillPixels(x, y, order, start, count, epoch);
            else
                FillFeatures(x, y, order, start, count);
        }
        catch
        {
            x.Dispose();
            y.Dispose();
            throw;
        }
        return new Batch(x, y, b);
    }

    private unsafe void FillFeatures(Tensor x, Tensor y, int[] order, int start, int count)
    {
        int bytes = _data.SampleBytes;
        byte* dst = (byte*)x.Ptr<float>();
        long* ly = y.Ptr<long>();
        for (int i = 0; i < count; i++)
        {
            int s = order[start + i];
            ly[i] = _data.Label(s);
            _data.Sample(s).CopyTo(new Span<byte>(dst + (long)i * bytes, bytes));
        }
    }

    private unsafe void FillPixels(Tensor x, Tensor y, int[] order, int start, int count, int epoch)
    {
        var shape = _data.SampleShape;
        int channels = shape[0],
            h = shape[1],
            w = shape[2],
            plane = h * w;
        var (scale, shift) = Affine(channels);
        float* dst = x.Ptr<float>();
        long* ly = y.Ptr<long>();
        int pad = _o.RandomCropPadding;
        for (int i = 0; i < count; i++)
        {
            int s = order[start + i];
            ly[i] = _data.Label(s);
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
            fixed (byte* sample = _data.Sample(s))
                for (int c = 0; c < channels; c++)
                {
                    byte* img = sample + (long)c * plane;
                    float* o = dst + ((long)i * channels + c) * plane;
                    float sc = scale[c],
                        sh = shift[c];
                    if (dy == 0 && dx == 0 && !flip)
                    {
                        for (int p = 0; p < plane; p++)
                            o[p] = img[p] * sc + sh;
                        continue;
                    }
                    for (int r = 0; r < h; r++)
                    for (int col = 0; col < w; col++)
                    {
                        int sr = r + dy,
                            sc0 = col + dx;
                        int scol = flip ? w - 1 - sc0 : sc0;
                        // Outside the source (the zero padding) normalises like a black pixel.
                        float v = (uint)sr < (uint)h && (uint)sc0 < (uint)w ? img[sr * w + scol] : 0;
                        o[r * w + col] = v * sc + sh;
                    }
                }
        }
    }

    /// <summary>Per channel, the factor and offset that take a byte to its normalised value: the dataset's own
    /// normalisation, else the options' single mean and std for every channel.</summary>
    private (float[] Scale, float[] Shift) Affine(int channels) =>
        (
            _data.Normalization
            ?? new PixelNormalization(
                Enumerable.Repeat(_o.Mean, channels).ToArray(),
                Enumerable.Repeat(_o.Std, channels).ToArray()
            )
        ).Affine();
}
