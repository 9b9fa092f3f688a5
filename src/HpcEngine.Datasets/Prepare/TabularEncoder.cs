using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>How one CSV column becomes features, with the statistics fitted on the training split.</summary>
public sealed record ColumnEncoding
{
    /// <summary>The column's name in the header.</summary>
    [JsonPropertyName("name")]
    public string Name { get; init; } = "";

    /// <summary>"numeric" or "categorical".</summary>
    [JsonPropertyName("type")]
    public string Type { get; init; } = "numeric";

    /// <summary>numeric: the training mean (standardize subtracts it).</summary>
    [JsonPropertyName("mean")]
    public double Mean { get; init; }

    /// <summary>numeric: the training standard deviation (1 where it is 0).</summary>
    [JsonPropertyName("std")]
    public double Std { get; init; } = 1;

    /// <summary>numeric: the training median (impute's value).</summary>
    [JsonPropertyName("median")]
    public double Median { get; init; }

    /// <summary>categorical: the values seen in training, in ordinal order; any other value goes to an "other"
    /// slot after them.</summary>
    [JsonPropertyName("vocabulary")]
    public IReadOnlyList<string>? Vocabulary { get; init; }

    /// <summary>categorical: the most frequent training value (impute's value).</summary>
    [JsonPropertyName("mode")]
    public string? Mode { get; init; }

    /// <summary>A missing-indicator feature follows (the column had missing values in training).</summary>
    [JsonPropertyName("indicator")]
    public bool Indicator { get; init; }

    /// <summary>Features this column gives.</summary>
    [JsonIgnore]
    public int Width => (Type == "numeric" ? 1 : Vocabulary!.Count + 1) + (Indicator ? 1 : 0);
}

/// <summary>Encodes CSV rows into float32 feature vectors the same way at preparation and at prediction: numeric
/// columns standardised with the training mean and std, categorical columns one-hot over the training vocabulary plus
/// an "other" slot for unseen values, missing values (empty, NA, N/A, NaN, ?, null) imputed with the training median
/// or most frequent value and flagged in a missing-indicator feature. Column types are inferred (numeric when every
/// present value parses as a number), overridable in the spec.</summary>
public sealed record TabularEncoder
{
    /// <summary>The label column.</summary>
    [JsonPropertyName("label")]
    public string Label { get; init; } = "";

    /// <summary>The classes: the label values, sorted (numerically when all are numbers).</summary>
    [JsonPropertyName("classes")]
    public IReadOnlyList<string> Classes { get; init; } = [];

    /// <summary>The encoded columns, in header order.</summary>
    [JsonPropertyName("columns")]
    public IReadOnlyList<ColumnEncoding> Columns { get; init; } = [];

    /// <summary>Columns left out (type ignore).</summary>
    [JsonPropertyName("ignored")]
    public IReadOnlyList<string> Ignored { get; init; } = [];

    /// <summary>The impute transform is on.</summary>
    [JsonPropertyName("impute")]
    public bool Impute { get; init; }

    /// <summary>The standardize transform is on.</summary>
    [JsonPropertyName("standardize")]
    public bool Standardize { get; init; }

    /// <summary>Features per row.</summary>
    [JsonIgnore]
    public int Width => Columns.Sum(c => c.Width);

    /// <summary>The name of each feature.</summary>
    public IReadOnlyList<string> FeatureNames() =>
        Columns
            .SelectMany(c =>
                (
                    c.Type == "numeric"
                        ? [c.Name]
                        : c.Vocabulary!.Select(v => $"{c.Name}={v}").Append($"{c.Name}=<other>")
                ).Concat(c.Indicator ? [$"{c.Name}:missing"] : [])
            )
            .ToArray();

    internal static bool IsMissing(string v)
    {
        var t = v.Trim();
        return t.Length == 0
            || t == "?"
            || t.Equals("NA", StringComparison.OrdinalIgnoreCase)
            || t.Equals("N/A", StringComparison.OrdinalIgnoreCase)
            || t.Equals("NaN", StringComparison.OrdinalIgnoreCase)
            || t.Equals("null", StringComparison.OrdinalIgnoreCase);
    }

    internal static bool TryNumber(string v, out double x) =>
        double.TryParse(v.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out x) && double.IsFinite(x);

    /// <summary>Fits the encoding on the <paramref name="train"/> rows of <paramref name="table"/> (types inferred
    /// over every row, statistics over the training rows only).</summary>
    public static TabularEncoder Fit(CsvTable table, IReadOnlyList<int> train, PipelineSpec spec)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(spec);
        string label = spec.Label
            ?? throw new DatasetException(
                table.Name,
                DatasetProblem.NoSuchColumn,
                "no label column named: give --label COLUMN (or \"label\" in the spec); the header has "
                    + string.Join(", ", table.Header)
            );
        int labelAt = Index(table, label, "label column");
        foreach (var name in (spec.Columns ?? new Dictionary<string, string>()).Keys)
            Index(table, name, "column in the spec's columns");
        bool impute = spec.Has("impute"),
            standardize = spec.Has("standardize"),
            oneHot = spec.Has("one-hot");
        var columns = new List<ColumnEncoding>();
        var ignored = new List<string>();
        for (int c = 0; c < table.Header.Count; c++)
        {
            if (c == labelAt)
                continue;
            string name = table.Header[c];
            string type = spec.Columns?.GetValueOrDefault(name) ?? Infer(table, c);
            if (type == "ignore")
            {
                ignored.Add(name);
                continue;
            }
            var present = train.Select(r => table.Rows[r][c]).Where(v => !IsMissing(v)).ToList();
            bool anyMissing = present.Count < train.Count;
            if (anyMissing && !impute)
                throw new DatasetException(
                    $"{table.Name}:{table.Lines[train.First(r => IsMissing(table.Rows[r][c]))]}",
                    DatasetProblem.BadRow,
                    $"column '{name}' has a missing value: add the impute transform, or type the column ignore"
                );
            if (present.Count == 0)
                throw new DatasetException(
                    table.Name,
                    DatasetProblem.NoSamples,
                    $"column '{name}' has no value in the training split: type it ignore in the spec's columns"
                );
            columns.Add(
                type == "numeric"
                    ? Numeric(table, c, train, present, anyMissing)
                    : Categorical(name, present, anyMissing, oneHot, table.Name)
            );
        }
        if (columns.Count == 0)
            throw new DatasetException(
                table.Name,
                DatasetProblem.NoSamples,
                "no feature column is left besides the label"
            );
        var classes = table.Rows.Select(r => r[labelAt].Trim()).Where(v => !IsMissing(v)).Distinct().ToList();
        classes = classes.All(v => TryNumber(v, out _))
            ? classes.OrderBy(v => double.Parse(v, CultureInfo.InvariantCulture)).ToList()
            : classes.OrderBy(v => v, StringComparer.Ordinal).ToList();
        if (classes.Count < 2)
            throw new DatasetException(
                table.Name,
                DatasetProblem.NoSamples,
                $"label column '{label}' has {classes.Count} distinct value(s): a classifier needs at least 2"
            );
        return new TabularEncoder
        {
            Label = label,
            Classes = classes,
            Columns = columns,
            Ignored = ignored,
            Impute = impute,
            Standardize = standardize,
        };
    }

    private static int Index(CsvTable table, string name, string what)
    {
        int i = table.Header.ToList().IndexOf(name);
        if (i < 0)
            throw new DatasetException(
                table.Name,
                DatasetProblem.NoSuchColumn,
                $"{what} '{name}' does not exist; the header has {string.Join(", ", table.Header)}"
            );
        return i;
    }

    private static string Infer(CsvTable table, int c) =>
        table.Rows.All(r => IsMissing(r[c]) || TryNumber(r[c], out _)) ? "numeric" : "categorical";

    private static ColumnEncoding Numeric(
        CsvTable table,
        int c,
        IReadOnlyList<int> train,
        List<string> present,
        bool anyMissing
    )
    {
        var values = new double[present.Count];
        for (int i = 0; i < present.Count; i++)
            if (!TryNumber(present[i], out values[i]))
            {
                int row = train.First(r => table.Rows[r][c] == present[i]);
                throw new DatasetException(
                    $"{table.Name}:{table.Lines[row]}",
                    DatasetProblem.BadRow,
                    $"column '{table.Header[c]}': '{present[i]}' is not a number (or type the column categorical)"
                );
            }
        double mean = values.Sum() / values.Length;
        double var = values.Sum(v => (v - mean) * (v - mean)) / values.Length;
        var sorted = values.Order().ToArray();
        double median =
            sorted.Length % 2 == 1
                ? sorted[sorted.Length / 2]
                : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        return new ColumnEncoding
        {
            Name = table.Header[c],
            Type = "numeric",
            Mean = mean,
            Std = var > 0 ? Math.Sqrt(var) : 1,
            Median = median,
            Indicator = anyMissing,
        };
    }

    private static ColumnEncoding Categorical(
        string name,
        List<string> present,
        bool anyMissing,
        bool oneHot,
        string file
    )
    {
        if (!oneHot)
            throw new DatasetException(
                file,
                DatasetProblem.BadSpec,
                $"column '{name}' is categorical: add the one-hot transform, or type it numeric or ignore"
            );
        var counts = present.Select(v => v.Trim()).GroupBy(v => v).ToList();
        return new ColumnEncoding
        {
            Name = name,
            Type = "categorical",
            Vocabulary = counts.Select(g => g.Key).Order(StringComparer.Ordinal).ToArray(),
            Mode = counts.OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).First().Key,
            Indicator = anyMissing,
        };
    }

    /// <summary>Where each encoded column and the label are in <paramref name="header"/> (a CSV of raw rows to
    /// score); the label may be absent (-1) when <paramref name="labelRequired"/> is false.</summary>
    public (int[] Columns, int Label) Bind(IReadOnlyList<string> header, string file, bool labelRequired)
    {
        ArgumentNullException.ThrowIfNull(header);
        var list = header.ToList();
        var at = Columns.Select(c => list.IndexOf(c.Name)).ToArray();
        int missing = Array.IndexOf(at, -1);
        if (missing >= 0)
            throw new DatasetException(
                file,
                DatasetProblem.NoSuchColumn,
                $"column '{Columns[missing].Name}' the model was trained on is not in the header ({string.Join(", ", header)})"
            );
        int label = list.IndexOf(Label);
        if (label < 0 && labelRequired)
            throw new DatasetException(
                file,
                DatasetProblem.NoSuchColumn,
                $"label column '{Label}' is not in the header"
            );
        return (at, label);
    }

    /// <summary>Encodes one row into <paramref name="features"/> (<see cref="Width"/> values); <paramref
    /// name="where"/> names the row (file:line) in errors.</summary>
    public void Encode(string[] row, int[] columns, Span<float> features, string where)
    {
        ArgumentNullException.ThrowIfNull(row);
        ArgumentNullException.ThrowIfNull(columns);
        int f = 0;
        for (int k = 0; k < Columns.Count; k++)
        {
            var col = Columns[k];
            string raw = row[columns[k]];
            bool missing = IsMissing(raw);
            if (missing && !Impute)
                throw new DatasetException(where, DatasetProblem.BadRow, $"column '{col.Name}' is missing");
            if (col.Type == "numeric")
            {
                double v = col.Median;
                if (!missing && !TryNumber(raw, out v))
                    throw new DatasetException(
                        where,
                        DatasetProblem.BadRow,
                        $"column '{col.Name}': '{raw}' is not a number"
                    );
                features[f++] = (float)(Standardize ? (v - col.Mean) / col.Std : v);
            }
            else
            {
                string v = missing ? col.Mode! : raw.Trim();
                int slot = Slots(k).GetValueOrDefault(v, -1),
                    width = col.Vocabulary!.Count + 1;
                features.Slice(f, width).Clear();
                features[f + (slot >= 0 ? slot : width - 1)] = 1;
                f += width;
            }
            if (col.Indicator)
                features[f++] = missing ? 1 : 0;
        }
    }

    private Dictionary<string, int>[]? _slots;

    private Dictionary<string, int> Slots(int column)
    {
        _slots ??= Columns
            .Select(c =>
                (c.Vocabulary ?? []).Select((v, i) => (v, i)).ToDictionary(p => p.v, p => p.i, StringComparer.Ordinal)
            )
            .ToArray();
        return _slots[column];
    }

    /// <summary>The label of a row as a class index; a value not among <see cref="Classes"/> is an error.</summary>
    public int LabelOf(string raw, string where)
    {
        ArgumentNullException.ThrowIfNull(raw);
        int c = Classes.ToList().IndexOf(raw.Trim());
        if (c < 0)
            throw new DatasetException(
                where,
                DatasetProblem.BadRow,
                IsMissing(raw) ? $"the label '{Label}' is missing" : $"label '{raw}' is not one of the classes"
            );
        return c;
    }

    /// <summary>As JSON, for the manifest's preprocessing.</summary>
    public JsonElement ToJson() => JsonSerializer.SerializeToElement(this);
}
