namespace HpcEngine.Data;

/// <summary>Per-channel normalisation of uint8 pixels: x/255, then (x − Mean[c]) / Std[c].</summary>
public sealed record PixelNormalization
{
    /// <summary>The mean of each channel (of x/255).</summary>
    public IReadOnlyList<double> Mean { get; }

    /// <summary>The standard deviation of each channel (of x/255), each positive.</summary>
    public IReadOnlyList<double> Std { get; }

    /// <summary>A normalisation with one mean and one standard deviation per channel.</summary>
    public PixelNormalization(IReadOnlyList<double> mean, IReadOnlyList<double> std)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (mean.Count == 0 || mean.Count != std.Count)
            throw new ArgumentException($"normalisation: {mean.Count} means for {std.Count} standard deviations");
        if (std.Any(s => !(s > 0) || !double.IsFinite(s)))
            throw new ArgumentOutOfRangeException(nameof(std), "normalisation: every std must be positive and finite");
        Mean = mean.ToArray();
        Std = std.ToArray();
    }

    /// <summary>Per channel, the float factor and offset that take a byte to its normalised value, x · 1/(255 σ) −
    /// μ/σ: the one arithmetic the loader, the inference server and the ONNX export share, so their inputs agree bit
    /// for bit.</summary>
    public (float[] Scale, float[] Shift) Affine()
    {
        var scale = new float[Mean.Count];
        var shift = new float[Mean.Count];
        for (int c = 0; c < Mean.Count; c++)
        {
            scale[c] = (float)(1.0 / (255 * Std[c]));
            shift[c] = (float)(-Mean[c] / Std[c]);
        }
        return (scale, shift);
    }
}

/// <summary>A classification dataset: <see cref="Count"/> samples of one shape, each with a label in
/// 0..<see cref="Classes"/>−1. Samples are either uint8 pixels [C, H, W] (<see cref="IsPixels"/>), which the loader
/// scales and normalises, or float32 feature vectors [F] used as stored. Implementations: <see cref="ImageDataset"/>
/// (in memory) and <see cref="Sharded.ShardedDataset"/> (memory-mapped shards of a prepared dataset).</summary>
public abstract class Dataset : IDisposable
{
    /// <summary>The number of samples.</summary>
    public abstract int Count { get; }

    /// <summary>The number of classes.</summary>
    public abstract int Classes { get; }

    /// <summary>One sample's shape as the model sees it: [C, H, W] for pixels, [F] for features.</summary>
    public abstract IReadOnlyList<int> SampleShape { get; }

    /// <summary>True: samples are uint8 pixels [C, H, W]; false: float32 features.</summary>
    public abstract bool IsPixels { get; }

    /// <summary>The pixels' normalisation (null: the loader options' single mean and std).</summary>
    public virtual PixelNormalization? Normalization => null;

    /// <summary>What turns a raw input (an image file, a CSV row) into one of these samples, as JSON (a prepared
    /// dataset's manifest gives it; null for data that came prepared, such as the IDX files). Checkpoints carry it, so
    /// a saved model applies the training-time preprocessing to raw inputs.</summary>
    public virtual string? Preprocessing => null;

    /// <summary>Class names by label (null: the labels are the names).</summary>
    public virtual IReadOnlyList<string>? ClassNames => null;

    /// <summary>The bytes of sample <paramref name="index"/>: the product of <see cref="SampleShape"/> bytes for pixels,
    /// four per feature for features.</summary>
    public abstract ReadOnlySpan<byte> Sample(int index);

    /// <summary>The label of sample <paramref name="index"/>.</summary>
    public abstract long Label(int index);

    /// <summary>The order of an epoch's samples, a permutation of 0..Count−1 that depends only on (seed, epoch): by
    /// default <see cref="Sampler.Permutation"/>; sharded data shuffles shards and then within a bounded
    /// window.</summary>
    public virtual int[] Order(bool shuffle, ulong seed, int epoch) => Sampler.Permutation(Count, shuffle, seed, epoch);

    /// <summary>"N samples, sha256 " and 16 hex digits identifying the content (run fingerprints compare it on
    /// resume).</summary>
    public abstract string Identity();

    /// <summary>Bytes of one sample.</summary>
    public int SampleBytes => SampleShape.Aggregate(1, (a, b) => a * b) * (IsPixels ? 1 : 4);

    /// <inheritdoc/>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases what the dataset holds.</summary>
    protected abstract void Dispose(bool disposing);
}
