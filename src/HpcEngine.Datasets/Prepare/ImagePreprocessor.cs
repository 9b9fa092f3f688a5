using System.Text.Json;
using System.Text.Json.Serialization;
using HpcEngine.Data.Sharded;
using SkiaSharp;

namespace HpcEngine.Datasets.Prepare;

/// <summary>Turns an encoded image (PNG, JPEG) into a sample: decoded by SkiaSharp into premultiplied RGBA (so
/// transparency composites over black), resized and center-cropped as the spec's steps say, then grey (ITU-R 601
/// weights, integer arithmetic) or RGB, stored as uint8 [C, H, W]. The same object runs at preparation and at
/// prediction time, which is what keeps training and serving from drifting apart.</summary>
public sealed record ImagePreprocessor
{
    /// <summary>1 (grey) or 3 (RGB).</summary>
    [JsonPropertyName("channels")]
    public int Channels { get; init; } = 3;

    /// <summary>The resize and center-crop steps, in order.</summary>
    [JsonPropertyName("steps")]
    public IReadOnlyList<TransformStep> Steps { get; init; } = [];

    /// <summary>The output's height and width.</summary>
    [JsonIgnore]
    public (int H, int W) Size => Steps.Count == 0 ? (0, 0) : (Steps[^1].Size![0], Steps[^1].Size![1]);

    /// <summary>The preprocessor a resolved spec describes.</summary>
    public static ImagePreprocessor From(PipelineSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return new ImagePreprocessor
        {
            Channels = spec.Channels ?? 3,
            Steps = spec.Transforms!.Where(t => t.Op is "resize" or "center-crop").ToArray(),
        };
    }

    /// <summary>Bytes of one sample.</summary>
    public int SampleBytes => Channels * Size.H * Size.W;

    /// <summary>Decodes and transforms the image in <paramref name="encoded"/>; <paramref name="name"/> names it in
    /// the error a corrupt or truncated image raises.</summary>
    public byte[] Process(ReadOnlySpan<byte> encoded, string name)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data);
        if (codec == null)
            throw new DatasetException(name, DatasetProblem.CorruptImage, "not a decodable image (PNG or JPEG)");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        if (info.Width < 1 || info.Height < 1 || (long)info.Width * info.Height > 1L << 28)
            throw new DatasetException(
                name,
                DatasetProblem.CorruptImage,
                $"image size {info.Width} × {info.Height} is empty or beyond the 2^28-pixel limit"
            );
        var bitmap = new SKBitmap(info);
        try
        {
            var result = codec.GetPixels(info, bitmap.GetPixels());
            if (result != SKCodecResult.Success)
                throw new DatasetException(
                    name,
                    DatasetProblem.CorruptImage,
                    result == SKCodecResult.IncompleteInput
                        ? "the image is truncated"
                        : $"the image cannot be decoded ({result})"
                );
            foreach (var step in Steps)
            {
                var next = step.Op == "resize" ? Resize(bitmap, step) : Crop(bitmap, step.Size![0], step.Size[1]);
                bitmap.Dispose();
                bitmap = next;
            }
            return Planes(bitmap);
        }
        finally
        {
            bitmap.Dispose();
        }
    }

    private static SKBitmap Resize(SKBitmap from, TransformStep step)
    {
        int h = step.Size![0],
            w = step.Size[1];
        if (step.KeepAspect)
        {
            double scale = Math.Max((double)h / from.Height, (double)w / from.Width);
            h = Math.Max(h, (int)Math.Round(from.Height * scale));
            w = Math.Max(w, (int)Math.Round(from.Width * scale));
        }
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul);
        return from.Resize(info, new SKSamplingOptions(SKCubicResampler.Mitchell))
            ?? throw new InvalidOperationException($"SkiaSharp could not resize to {w} × {h}");
    }

    /// <summary>The centre h × w of the image; where the image is smaller, black fills the rest (as torchvision's
    /// center crop pads).</summary>
    private static SKBitmap Crop(SKBitmap from, int h, int w)
    {
        var to = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul));
        to.Erase(SKColors.Transparent);
        int top = (from.Height - h) / 2,
            left = (from.Width - w) / 2;
        var src = from.GetPixelSpan();
        var dst = to.GetPixelSpan();
        for (int y = 0; y < h; y++)
        {
            int sy = y + top;
            if ((uint)sy >= (uint)from.Height)
                continue;
            int x0 = Math.Max(0, -left),
                x1 = Math.Min(w, from.Width - left);
            if (x1 <= x0)
                continue;
            src.Slice((sy * from.Width + left + x0) * 4, (x1 - x0) * 4).CopyTo(dst.Slice((y * w + x0) * 4));
        }
        return to;
    }

    private byte[] Planes(SKBitmap bitmap)
    {
        int h = bitmap.Height,
            w = bitmap.Width,
            plane = h * w;
        if ((h, w) != Size && Steps.Count > 0)
            throw new InvalidOperationException($"internal: image is {h} × {w}, the steps give {Size}");
        var px = bitmap.GetPixelSpan();
        var sample = new byte[Channels * plane];
        for (int i = 0; i < plane; i++)
        {
            int r = px[4 * i],
                g = px[4 * i + 1],
                b = px[4 * i + 2];
            if (Channels == 1)
                sample[i] = (byte)((77 * r + 150 * g + 29 * b + 128) >> 8);
            else
            {
                sample[i] = (byte)r;
                sample[plane + i] = (byte)g;
                sample[2 * plane + i] = (byte)b;
            }
        }
        return sample;
    }

    /// <summary>As JSON, for the manifest's preprocessing.</summary>
    public JsonElement ToJson() => JsonSerializer.SerializeToElement(this);
}
