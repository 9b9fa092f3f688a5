using System.Runtime.InteropServices;

namespace HpcEngine.Data;

/// <summary>A tabular dataset held in memory: float32 feature vectors [N, F] (already preprocessed) and their
/// labels.</summary>
public sealed class FeatureDataset : Dataset
{
    private readonly float[] _features;
    private readonly long[] _labels;
    private readonly int[] _shape;
    private readonly IReadOnlyList<string>? _classNames;
    private readonly string? _preprocessing;

    /// <inheritdoc/>
    public override int Count => _labels.Length;

    /// <inheritdoc/>
    public override int Classes { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<int> SampleShape => _shape;

    /// <inheritdoc/>
    public override bool IsPixels => false;

    /// <inheritdoc/>
    public override IReadOnlyList<string>? ClassNames => _classNames;

    /// <inheritdoc/>
    public override string? Preprocessing => _preprocessing;

    /// <summary>A dataset of <paramref name="labels"/>.Length rows of <paramref name="width"/> features each (row
    /// major in <paramref name="features"/>), labels in 0..<paramref name="classes"/>−1.</summary>
    public FeatureDataset(
        float[] features,
        long[] labels,
        int width,
        int classes,
        IReadOnlyList<string>? classNames = null,
        string? preprocessing = null
    )
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        if (features.LongLength != (long)labels.Length * width)
            throw new ShapeMismatchException(
                $"dataset: {features.Length} features are not {labels.Length} rows of {width}"
            );
        int bad = Array.FindIndex(labels, l => l < 0 || l >= classes);
        if (bad >= 0)
            throw new ArgumentOutOfRangeException(
                nameof(labels),
                $"label {labels[bad]} of row {bad} is not a class 0..{classes - 1}"
            );
        _features = features;
        _labels = labels;
        _shape = [width];
        Classes = classes;
        _classNames = classNames;
        _preprocessing = preprocessing;
    }

    /// <inheritdoc/>
    public override ReadOnlySpan<byte> Sample(int index) =>
        MemoryMarshal.AsBytes(_features.AsSpan(index * _shape[0], _shape[0]));

    /// <inheritdoc/>
    public override long Label(int index) => _labels[index];

    /// <inheritdoc/>
    public override string Identity() =>
        ImageDataset.Identity(
            Count,
            MemoryMarshal.AsBytes(_features.AsSpan()),
            MemoryMarshal.AsBytes(_labels.AsSpan())
        );

    /// <inheritdoc/>
    protected override void Dispose(bool disposing) { }
}
