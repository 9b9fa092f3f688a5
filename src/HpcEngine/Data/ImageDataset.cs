using System.Globalization;
using System.Security.Cryptography;

namespace HpcEngine.Data;

/// <summary>An image-classification dataset held in memory: uint8 images [N, H, W] (one channel) or [N, C, H, W],
/// int64 labels [N].</summary>
public sealed class ImageDataset : Dataset
{
    private readonly int[] _shape;
    private readonly PixelNormalization? _normalization;
    private string? _identity;

    /// <summary>The images, uint8, [N, H, W] or [N, C, H, W].</summary>
    public Tensor Images { get; }

    /// <summary>The class of each image, [N] int64.</summary>
    public Tensor Labels { get; }

    /// <inheritdoc/>
    public override int Count => Labels.NumEl;

    /// <inheritdoc/>
    public override int Classes { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<int> SampleShape => _shape;

    /// <inheritdoc/>
    public override bool IsPixels => true;

    /// <inheritdoc/>
    public override PixelNormalization? Normalization => _normalization;

    /// <summary>A dataset of <paramref name="images"/> with their <paramref name="labels"/> out of <paramref
    /// name="classes"/> classes; it owns both tensors. <paramref name="normalization"/>, when given, has one entry per
    /// channel.</summary>
    public ImageDataset(Tensor images, Tensor labels, int classes, PixelNormalization? normalization = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        if (images.Rank is not (3 or 4) || labels.Rank != 1 || images.Shape[0] != labels.Shape[0])
            throw new ShapeMismatchException(
                $"dataset: images must be [N, H, W] or [N, C, H, W] and labels [N] with the same N (got "
                    + $"{Shapes.Format(images.Shape)} and {Shapes.Format(labels.Shape)})"
            );
        if (images.DType != DType.UInt8 || labels.DType != DType.Int64)
            throw new ArgumentException(
                $"dataset: images must be uint8 and labels int64 (got {images.DType} and {labels.DType})"
            );
        _shape = images.Rank == 3 ? [1, images.Shape[1], images.Shape[2]] : [.. images.ShapeArray[1..]];
        if (normalization != null && normalization.Mean.Count != _shape[0])
            throw new ArgumentException(
                $"dataset: {normalization.Mean.Count} normalisation channels for images of {_shape[0]}"
            );
        if (!images.IsContiguous || !labels.IsContiguous)
            throw new ArgumentException("dataset: images and labels must be contiguous (call Contiguous() first)");
        Images = images.DetachFromScope();
        Labels = labels.DetachFromScope();
        Classes = classes;
        _normalization = normalization;
    }

    /// <inheritdoc/>
    public override unsafe ReadOnlySpan<byte> Sample(int index)
    {
        if ((uint)index >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"sample {index} of {Count}");
        int bytes = SampleBytes;
        return new ReadOnlySpan<byte>(Images.Ptr<byte>() + (long)index * bytes, bytes);
    }

    /// <inheritdoc/>
    public override unsafe long Label(int index)
    {
        if ((uint)index >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"sample {index} of {Count}");
        return Labels.Ptr<long>()[index];
    }

    /// <inheritdoc/>
    public override string Identity() =>
        _identity ??= Identity(Count, Images.AsByteMemory().Span, Labels.AsByteMemory().Span);

    /// <summary>"N samples, sha256 " and the first 16 hex digits of the SHA-256 over the two byte spans.</summary>
    internal static string Identity(int count, ReadOnlySpan<byte> samples, ReadOnlySpan<byte> labels)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(samples);
        sha.AppendData(labels);
        return $"{count.ToString(CultureInfo.InvariantCulture)} samples, sha256 "
            + Convert.ToHexString(sha.GetHashAndReset())[..16].ToLowerInvariant();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (!disposing)
            return;
        Images.Dispose();
        Labels.Dispose();
    }
}
