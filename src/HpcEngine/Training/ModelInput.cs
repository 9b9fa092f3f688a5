using System.Globalization;
using System.Text.Json;
using HpcEngine.Data;

namespace HpcEngine.Training;

/// <summary>What a model's inputs are, as its checkpoint records it: the sample shape, the classes, the pixel
/// normalisation and (for a prepared dataset) the preprocessing that turns a raw input into a sample. With it a saved
/// model can be rebuilt and fed raw inputs exactly as it was trained.</summary>
public sealed record ModelInput
{
    /// <summary>One sample's shape: [C, H, W] or [F].</summary>
    public IReadOnlyList<int> SampleShape { get; init; } = [1, 28, 28];

    /// <summary>The number of classes.</summary>
    public int Classes { get; init; } = 10;

    /// <summary>Class names by label (null: none recorded).</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>True: uint8 pixels, normalised by <see cref="Normalization"/>; false: float32 features.</summary>
    public bool IsPixels { get; init; } = true;

    /// <summary>The pixels' normalisation.</summary>
    public PixelNormalization? Normalization { get; init; } = FashionMnistNormalization;

    /// <summary>The prepared dataset's preprocessing as JSON (null: the data came prepared, as the IDX files
    /// do).</summary>
    public string? Preprocessing { get; init; }

    /// <summary>Fashion-MNIST's: one channel, <see cref="FashionMnist.Mean"/> and <see cref="FashionMnist.Std"/>.</summary>
    public static PixelNormalization FashionMnistNormalization { get; } = new([FashionMnist.Mean], [FashionMnist.Std]);

    /// <summary>The inputs of a model trained on <paramref name="data"/>; a dataset without its own normalisation is
    /// normalised as the loader's defaults do (Fashion-MNIST's).</summary>
    public static ModelInput Of(Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new ModelInput
        {
            SampleShape = data.SampleShape.ToArray(),
            Classes = data.Classes,
            ClassNames = data.ClassNames?.ToArray() ?? (data.Classes == 10 ? FashionMnist.ClassNames : null),
            IsPixels = data.IsPixels,
            Normalization = data.IsPixels
                ? data.Normalization
                    ?? new PixelNormalization(
                        Enumerable.Repeat(FashionMnist.Mean, data.SampleShape[0]).ToArray(),
                        Enumerable.Repeat(FashionMnist.Std, data.SampleShape[0]).ToArray()
                    )
                : null,
            Preprocessing = data.Preprocessing,
        };
    }

    /// <summary>The metadata keys of a model file.</summary>
    internal const string ShapeKey = "hpcengine.input_shape",
        ClassesKey = "hpcengine.classes",
        ClassNamesKey = "hpcengine.class_names",
        KindKey = "hpcengine.input_kind",
        NormalizationKey = "hpcengine.input_normalization",
        PreprocessingKey = "hpcengine.preprocessing";

    /// <summary>The metadata a model file stores for these inputs.</summary>
    internal void WriteTo(Dictionary<string, string> meta)
    {
        meta[ShapeKey] = JsonSerializer.Serialize(SampleShape);
        meta[ClassesKey] = Classes.ToString(CultureInfo.InvariantCulture);
        meta[KindKey] = IsPixels ? "pixels" : "features";
        if (ClassNames != null)
            meta[ClassNamesKey] = JsonSerializer.Serialize(ClassNames);
        if (Normalization != null)
        {
            meta[NormalizationKey] = JsonSerializer.Serialize(
                new Dictionary<string, IReadOnlyList<double>>
                {
                    ["mean"] = Normalization.Mean,
                    ["std"] = Normalization.Std,
                }
            );
            // The single-channel keys of earlier checkpoints, kept for readers of those.
            meta[Checkpoint.InputMeanKey] = Normalization.Mean[0].ToString("R", CultureInfo.InvariantCulture);
            meta[Checkpoint.InputStdKey] = Normalization.Std[0].ToString("R", CultureInfo.InvariantCulture);
        }
        if (Preprocessing != null)
            meta[PreprocessingKey] = Preprocessing;
    }

    /// <summary>The inputs a model file's metadata records; a file from before these keys gets Fashion-MNIST's.</summary>
    public static ModelInput Read(IReadOnlyDictionary<string, string> meta)
    {
        ArgumentNullException.ThrowIfNull(meta);
        if (!meta.TryGetValue(ShapeKey, out var shape))
            return new ModelInput { ClassNames = FashionMnist.ClassNames };
        PixelNormalization? norm = null;
        if (meta.TryGetValue(NormalizationKey, out var n))
        {
            var d = JsonSerializer.Deserialize<Dictionary<string, double[]>>(n)!;
            norm = new PixelNormalization(d["mean"], d["std"]);
        }
        return new ModelInput
        {
            SampleShape = JsonSerializer.Deserialize<int[]>(shape)!,
            Classes = int.Parse(meta[ClassesKey], CultureInfo.InvariantCulture),
            ClassNames = meta.TryGetValue(ClassNamesKey, out var names)
                ? JsonSerializer.Deserialize<string[]>(names)
                : null,
            IsPixels = meta.GetValueOrDefault(KindKey, "pixels") == "pixels",
            Normalization = norm,
            Preprocessing = meta.GetValueOrDefault(PreprocessingKey),
        };
    }
}
