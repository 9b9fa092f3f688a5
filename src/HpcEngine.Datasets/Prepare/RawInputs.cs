using System.Text.Json;
using HpcEngine.Data;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>Raw inputs (image files, CSV rows) turned into samples by a model's recorded preprocessing (the manifest's,
/// which every checkpoint carries): the same <see cref="ImagePreprocessor"/> or <see cref="TabularEncoder"/> the
/// preparation ran, with the same statistics, so a served model sees exactly what it was trained on.</summary>
public sealed class RawInputs
{
    private readonly ImagePreprocessor? _image;
    private readonly PixelNormalization? _normalization;
    private readonly TabularEncoder? _table;

    /// <summary>"image" or "tabular".</summary>
    public string Kind { get; }

    private RawInputs(string kind, ImagePreprocessor? image, PixelNormalization? normalization, TabularEncoder? table)
    {
        Kind = kind;
        _image = image;
        _normalization = normalization;
        _table = table;
    }

    /// <summary>Reads the preprocessing JSON (<see cref="Dataset.Preprocessing"/>); an empty or unknown one is an
    /// error saying the model was trained on data that came prepared.</summary>
    public static RawInputs FromJson(string? preprocessing)
    {
        if (string.IsNullOrWhiteSpace(preprocessing) || preprocessing == "{}")
            throw new DatasetException(
                "checkpoint",
                DatasetProblem.BadManifest,
                "the model records no preprocessing (it was trained on IDX data, not on a prepared dataset): raw "
                    + "inputs need a model trained with a dataset from hpcengine data prepare"
            );
        using var doc = JsonDocument.Parse(preprocessing);
        var root = doc.RootElement;
        string kind = root.GetProperty("kind").GetString() ?? "";
        return kind switch
        {
            "image" => new RawInputs(
                kind,
                root.GetProperty("image").Deserialize<ImagePreprocessor>(),
                new PixelNormalization(
                    root.GetProperty("mean").Deserialize<double[]>()!,
                    root.GetProperty("std").Deserialize<double[]>()!
                ),
                null
            ),
            "tabular" => new RawInputs(kind, null, null, root.GetProperty("tabular").Deserialize<TabularEncoder>()),
            _ => throw new DatasetException(
                "checkpoint",
                DatasetProblem.BadManifest,
                $"unknown preprocessing kind '{kind}'"
            ),
        };
    }

    /// <summary>The raw-input path of a model: its recorded preprocessing, or — for a pixel model trained on data that
    /// came prepared (the IDX files) — decoding to its channels, a resize to its [H, W] and its normalisation.</summary>
    public static RawInputs For(HpcEngine.Training.ModelInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Preprocessing is { } p && p != "{}")
            return FromJson(p);
        if (!input.IsPixels || input.SampleShape.Count != 3 || input.Normalization == null)
            return FromJson(null);
        var shape = input.SampleShape;
        var image = new ImagePreprocessor
        {
            Channels = shape[0],
            Steps = [new TransformStep { Op = "resize", Size = [shape[1], shape[2]] }],
        };
        return new RawInputs("image", image, input.Normalization, null);
    }

    /// <summary>One encoded image (PNG, JPEG) as a sample's bytes [C, H, W].</summary>
    public byte[] Image(ReadOnlySpan<byte> encoded, string name) =>
        (
            _image
            ?? throw new DatasetException(name, DatasetProblem.ShapeMismatch, "this model takes CSV rows, not images")
        ).Process(encoded, name);

    /// <summary>The pixels' normalisation (image models).</summary>
    public PixelNormalization? Normalization => _normalization;

    /// <summary>The table encoder (tabular models).</summary>
    public TabularEncoder? Table => _table;

    /// <summary>Image files as a dataset of <paramref name="classes"/> classes (labels 0), each decoded and transformed
    /// as at preparation.</summary>
    public ImageDataset Images(IReadOnlyList<string> files, int classes)
    {
        ArgumentNullException.ThrowIfNull(files);
        if (_image == null)
            throw new DatasetException(
                files.FirstOrDefault() ?? "",
                DatasetProblem.ShapeMismatch,
                "this model takes CSV rows, not images"
            );
        int bytes = _image.SampleBytes;
        var all = new byte[files.Count * (long)bytes];
        for (int i = 0; i < files.Count; i++)
        {
            if (!File.Exists(files[i]))
                throw new DatasetException(files[i], DatasetProblem.BadSource, "input file not found");
            _image.Process(File.ReadAllBytes(files[i]), files[i]).CopyTo(all.AsSpan(i * bytes));
        }
        var (h, w) = _image.Size;
        var x = Tensor.FromBytes(all, DType.UInt8, [files.Count, _image.Channels, h, w]);
        return new ImageDataset(x, Tensor.Zeros([files.Count], DType.Int64), classes, _normalization);
    }

    /// <summary>The rows of a CSV file (header first) as a dataset; the label column, when present, gives the
    /// labels (an unknown label is an error), else they are 0. Returns also where each row came from.</summary>
    public (FeatureDataset Data, string[] Rows, bool Labelled) Rows(string csvFile)
    {
        ArgumentNullException.ThrowIfNull(csvFile);
        if (_table == null)
            throw new DatasetException(csvFile, DatasetProblem.ShapeMismatch, "this model takes images, not CSV rows");
        if (!File.Exists(csvFile))
            throw new DatasetException(csvFile, DatasetProblem.BadSource, "input file not found");
        var table = CsvTable.Read(csvFile);
        var (columns, label) = _table.Bind(table.Header, csvFile, labelRequired: false);
        int width = _table.Width;
        var features = new float[table.Rows.Count * (long)width];
        var labels = new long[table.Rows.Count];
        var where = new string[table.Rows.Count];
        for (int r = 0; r < table.Rows.Count; r++)
        {
            where[r] = $"{csvFile}:{table.Lines[r]}";
            _table.Encode(table.Rows[r], columns, features.AsSpan(r * width, width), where[r]);
            if (label >= 0)
                labels[r] = _table.LabelOf(table.Rows[r][label], where[r]);
        }
        return (new FeatureDataset(features, labels, width, _table.Classes.Count, _table.Classes), where, label >= 0);
    }
}
