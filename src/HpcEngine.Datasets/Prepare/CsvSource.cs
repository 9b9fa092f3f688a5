using System.Text.Json;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>Reads a CSV table: rows split by the spec's seeded fraction, the encoding fitted on the training rows
/// (<see cref="TabularEncoder"/>), every row encoded into float32 features in parallel.</summary>
internal static class CsvSource
{
    public static SourceSamples Read(DataSource source, PipelineSpec spec, int workers, Action<string>? log)
    {
        var skipped = new List<SkippedEntry>();
        bool skip = spec.OnError == "skip";
        var table = CsvTable.Read(source.Path, skip, (item, why) =>
            skipped.Add(new SkippedEntry { Item = item, Reason = why })
        );
        if (spec.Label is { } label && !table.Header.Contains(label))
            throw new DatasetException(
                source.Path,
                DatasetProblem.NoSuchColumn,
                $"label column '{label}' does not exist; the header has {string.Join(", ", table.Header)}"
            );
        // Rows whose label is missing cannot be trained on: an error, or skipped.
        int labelAt = spec.Label == null ? -1 : table.Header.ToList().IndexOf(spec.Label);
        var usable = new List<int>();
        for (int r = 0; r < table.Rows.Count; r++)
        {
            if (labelAt >= 0 && TabularEncoder.IsMissing(table.Rows[r][labelAt]))
            {
                string where = $"{table.Name}:{table.Lines[r]}";
                if (!skip)
                    throw new DatasetException(
                        where,
                        DatasetProblem.BadRow,
                        $"the label '{spec.Label}' is missing (set on_error to skip to leave such rows out)"
                    );
                skipped.Add(new SkippedEntry { Item = where, Reason = "label missing" });
                continue;
            }
            usable.Add(r);
        }
        if (usable.Count < 2)
            throw new DatasetException(
                source.Path,
                DatasetProblem.NoSamples,
                $"{usable.Count} usable row(s): nothing to train on"
            );
        var (trainAt, testAt) = Splitting.Fraction(usable.Count, spec.Split!);
        int[] train = trainAt.Select(i => usable[i]).ToArray(),
            test = testAt.Select(i => usable[i]).ToArray();
        var encoder = TabularEncoder.Fit(table, train, spec);
        var (columns, labelColumn) = encoder.Bind(table.Header, table.Name, labelRequired: true);
        var progress = new Progress("encode", train.Length + test.Length, log);
        var trainSplit = Encode(table, train, encoder, columns, labelColumn, skip, workers, progress, skipped);
        var testSplit = Encode(table, test, encoder, columns, labelColumn, skip, workers, progress, skipped);
        var feature = new FeatureEntry
        {
            Kind = "tabular",
            Shape = [encoder.Width],
            DType = "float32",
            Names = encoder.FeatureNames(),
        };
        var preprocessing = JsonSerializer.SerializeToElement(
            new Dictionary<string, object> { ["kind"] = "tabular", ["tabular"] = encoder }
        );
        return new SourceSamples(trainSplit, testSplit, feature, encoder.Classes, preprocessing, skipped);
    }

    private static SplitSamples Encode(
        CsvTable table,
        int[] rows,
        TabularEncoder encoder,
        int[] columns,
        int labelColumn,
        bool skip,
        int workers,
        Progress progress,
        List<SkippedEntry> skipped
    )
    {
        int width = encoder.Width;
        var features = new float[rows.Length * (long)width];
        var labels = new int[rows.Length];
        var errors = new DatasetException?[rows.Length];
        Workers.For(rows.Length, workers, i =>
        {
            string where = $"{table.Name}:{table.Lines[rows[i]]}";
            try
            {
                encoder.Encode(table.Rows[rows[i]], columns, features.AsSpan(i * width, width), where);
                labels[i] = encoder.LabelOf(table.Rows[rows[i]][labelColumn], where);
            }
            catch (DatasetException e)
            {
                errors[i] = e;
            }
            progress.Add(1);
        });
        var kept = new List<int>();
        for (int i = 0; i < rows.Length; i++)
        {
            if (errors[i] is { } e)
            {
                if (!skip)
                    throw e;
                skipped.Add(new SkippedEntry { Item = e.Where ?? "", Reason = e.Detail });
                continue;
            }
            kept.Add(i);
        }
        var bytes = new byte[kept.Count * (long)width * 4];
        for (int k = 0; k < kept.Count; k++)
            System
                .Runtime.InteropServices.MemoryMarshal.AsBytes(features.AsSpan(kept[k] * width, width))
                .CopyTo(bytes.AsSpan(k * width * 4));
        return new SplitSamples(bytes, kept.Select(i => labels[i]).ToArray());
    }
}
