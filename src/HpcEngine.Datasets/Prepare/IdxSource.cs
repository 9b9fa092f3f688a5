using System.Text.Json;
using HpcEngine.Data;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>Reads MNIST-format IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-..., gzipped or
/// not) through the validating IDX reader: the given split, 1 × H × W uint8 samples.</summary>
internal static class IdxSource
{
    public static SourceSamples Read(DataSource source, PipelineSpec spec, int workers)
    {
        var (train, test) = FashionMnist.Load(source.Path);
        using (train)
        using (test)
        {
            var tr = Copy(train);
            var te = Copy(test);
            int h = train.SampleShape[1],
                w = train.SampleShape[2];
            var (mean, std) = spec.Has("normalize") ? Splitting.PixelStatistics(tr, 1, workers) : ([0.0], [1.0]);
            var classes = ClassNames(spec, source.Path);
            var feature = new FeatureEntry
            {
                Kind = "image",
                Shape = [1, h, w],
                DType = "uint8",
                Mean = mean,
                Std = std,
            };
            var preprocessing = JsonSerializer.SerializeToElement(
                new Dictionary<string, object>
                {
                    ["kind"] = "image",
                    ["image"] = new ImagePreprocessor
                    {
                        Channels = 1,
                        Steps = [new TransformStep { Op = "resize", Size = [h, w] }],
                    },
                    ["mean"] = mean,
                    ["std"] = std,
                }
            );
            return new SourceSamples(tr, te, feature, classes, preprocessing, []);
        }
    }

    private static SplitSamples Copy(ImageDataset data)
    {
        var labels = new int[data.Count];
        for (int i = 0; i < labels.Length; i++)
            labels[i] = (int)data.Label(i);
        return new SplitSamples(data.Images.ToArray<byte>(), labels);
    }

    private static string[] ClassNames(PipelineSpec spec, string where)
    {
        if (spec.ClassNames is not { } names)
            return Enumerable
                .Range(0, 10)
                .Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))
                .ToArray();
        if (names.ValueKind == JsonValueKind.String && names.GetString() == "fashion-mnist")
            return FashionMnist.ClassNames;
        if (
            names.ValueKind == JsonValueKind.Array
            && names.GetArrayLength() == 10
            && names.EnumerateArray().All(n => n.ValueKind == JsonValueKind.String)
        )
            return names.EnumerateArray().Select(n => n.GetString()!).ToArray();
        throw new DatasetException(
            where,
            DatasetProblem.BadSpec,
            "class_names: \"fashion-mnist\" or an array of 10 names"
        );
    }
}
