using System.Globalization;
using CommandLine;
using HpcEngine.Data.Sharded;
using HpcEngine.Datasets.Prepare;

namespace HpcEngine.Cli.Commands;

[Verb(
    "data",
    HelpText = "Prepare raw data into a checked, cached sharded dataset (data prepare --source SRC --out DIR), or "
        + "report on one (data inspect DIR [--verify]). Format and spec: docs/DATASETS.md."
)]
public sealed class DataOptions
{
    [Value(0, MetaName = "action", Required = true, HelpText = "prepare or inspect.")]
    public string Action { get; set; } = "";

    [Value(1, MetaName = "DIR", HelpText = "inspect: the dataset directory.")]
    public string? Dir { get; set; }

    [Option("source", HelpText = "prepare: idx:DIR (IDX files), images:DIR (a folder per class) or csv:FILE.")]
    public string? Source { get; set; }

    [Option("out", HelpText = "prepare: the dataset directory to write (new, empty, or an earlier dataset).")]
    public string? Out { get; set; }

    [Option("spec", HelpText = "prepare: a pipeline spec (JSON; the source's defaults when omitted).")]
    public string? Spec { get; set; }

    [Option("label", HelpText = "prepare, csv: the label column (over the spec's).")]
    public string? Label { get; set; }

    [Option("shard-size", HelpText = "prepare: target shard size, e.g. 64MB, 512KB (default 64MB).")]
    public string? ShardSize { get; set; }

    [Option("workers", HelpText = "prepare: threads (default: the cores; the output is the same for any).")]
    public int? Workers { get; set; }

    [Option(
        "on-error",
        HelpText = "prepare: fail (default) or skip an unreadable image or row, counted in the manifest."
    )]
    public string? OnError { get; set; }

    [Option("verify", HelpText = "inspect: re-hash every shard against the manifest.")]
    public bool Verify { get; set; }

    [Option("json", HelpText = "Write the result (manifest, statistics) as JSON to this file.")]
    public string? Json { get; set; }
}

internal static class DataCommand
{
    public static int Run(DataOptions o)
    {
        switch (o.Action)
        {
            case "prepare":
                return Prepare(o);
            case "inspect":
                var dir = o.Dir ?? throw new ArgumentException("data inspect DIR: the dataset directory is missing");
                var report = DatasetInspection.Of(dir, o.Verify);
                Console.Write(report.Render());
                if (o.Json != null)
                    File.WriteAllText(o.Json, report.ToJson());
                return 0;
            default:
                throw new ArgumentException($"data: unknown action '{o.Action}': use prepare or inspect");
        }
    }

    private static int Prepare(DataOptions o)
    {
        if (o.Source == null || o.Out == null)
            throw new ArgumentException("data prepare needs --source SRC and --out DIR");
        if (o.Workers is < 1)
            throw new ArgumentException($"--workers {o.Workers}: must be at least 1");
        var spec = o.Spec != null ? PipelineSpec.Load(o.Spec) : new PipelineSpec();
        spec = spec with
        {
            Label = o.Label ?? spec.Label,
            OnError = o.OnError ?? spec.OnError,
            ShardBytes = o.ShardSize != null ? ParseSize(o.ShardSize) : spec.ShardBytes,
        };
        var result = DatasetPreparer.Prepare(
            new PrepareOptions
            {
                Source = DataSource.Parse(o.Source),
                OutDir = o.Out,
                Spec = spec,
                Workers = o.Workers ?? Environment.ProcessorCount,
                Log = line => Console.Error.WriteLine(line),
            }
        );
        Console.WriteLine(
            result.UpToDate
                ? $"{o.Out}: up to date"
                : $"{o.Out}: prepared {string.Join(", ", result.Manifest.Splits.Select(s => $"{s.Value.Samples} {s.Key}"))} samples, "
                    + $"{result.Seconds.ToString("F1", CultureInfo.InvariantCulture)} s ({result.SamplesPerSecond.ToString("F0", CultureInfo.InvariantCulture)} samples/s)"
                    + (result.Manifest.Skipped.Count > 0 ? $", {result.Manifest.Skipped.Count} skipped" : "")
        );
        if (o.Json != null)
            File.WriteAllText(o.Json, result.Manifest.ToJson());
        return 0;
    }

    /// <summary>"64MB", "512KB", "1GB" or a byte count.</summary>
    internal static long ParseSize(string text)
    {
        string t = text.Trim().ToUpperInvariant();
        long unit =
            t.EndsWith("GB", StringComparison.Ordinal) ? 1L << 30
            : t.EndsWith("MB", StringComparison.Ordinal) ? 1L << 20
            : t.EndsWith("KB", StringComparison.Ordinal) ? 1L << 10
            : 1;
        string number = unit == 1 ? t.TrimEnd('B') : t[..^2];
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v > 0))
            throw new ArgumentException($"--shard-size '{text}': give a size such as 64MB, 512KB or 1GB");
        return (long)(v * unit);
    }
}
