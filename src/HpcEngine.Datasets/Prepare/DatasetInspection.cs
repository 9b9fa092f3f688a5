using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>What <c>hpcengine data inspect</c> reports of a prepared dataset: samples per split, the classes and their
/// balance, feature statistics over the training split, the shards and, with <c>verify</c>, that every shard's bytes
/// still match its SHA-256.</summary>
public sealed record DatasetInspection(
    DatasetManifest Manifest,
    IReadOnlyList<(string Name, double Mean, double Std)> FeatureStatistics,
    bool Verified
)
{
    /// <summary>Reads the dataset in <paramref name="dir"/>; <paramref name="verify"/> re-hashes every shard (a
    /// changed one raises a <see cref="DatasetException"/> naming it).</summary>
    public static DatasetInspection Of(string dir, bool verify)
    {
        var manifest = DatasetManifest.Read(dir);
        foreach (var split in manifest.Splits.Keys)
            using (ShardedDataset.Open(dir, split, verify)) { } // headers always; hashes when asked
        return new DatasetInspection(manifest, Statistics(dir, manifest), verify);
    }

    private static List<(string, double, double)> Statistics(string dir, DatasetManifest m)
    {
        var f = m.Feature;
        if (f.Kind == "image")
            return Enumerable
                .Range(0, f.Shape[0])
                .Select(c => ($"channel {c}", f.Mean?[c] ?? double.NaN, f.Std?[c] ?? double.NaN))
                .ToList();
        using var data = ShardedDataset.Open(dir, "train", verify: false);
        int width = f.Shape[0];
        var sum = new double[width];
        var squares = new double[width];
        for (int i = 0; i < data.Count; i++)
        {
            var row = MemoryMarshal.Cast<byte, float>(data.Sample(i));
            for (int j = 0; j < width; j++)
            {
                sum[j] += row[j];
                squares[j] += (double)row[j] * row[j];
            }
        }
        var names = f.Names ?? Enumerable.Range(0, width).Select(j => $"f{j}").ToList();
        return Enumerable
            .Range(0, width)
            .Select(j =>
            {
                double mean = sum[j] / Math.Max(1, data.Count);
                return (names[j], mean, Math.Sqrt(Math.Max(0, squares[j] / Math.Max(1, data.Count) - mean * mean)));
            })
            .ToList();
    }

    /// <summary>The report for people.</summary>
    public string Render()
    {
        var m = Manifest;
        var s = new StringBuilder();
        string Inv(FormattableString f) => f.ToString(CultureInfo.InvariantCulture);
        s.AppendLine(
            Inv(
                $"dataset format {m.FormatVersion}, source {m.Source.Kind}:{m.Source.Path} ({m.Source.Files} files, sha256 {m.Source.ContentSha256[..16]})"
            )
        );
        s.AppendLine(
            Inv(
                $"sample: {m.Feature.Kind} [{string.Join(", ", m.Feature.Shape)}] {m.Feature.DType}; {m.Classes.Count} classes"
            )
        );
        foreach (var (name, split) in m.Splits)
        {
            s.AppendLine(Inv($"{name}: {split.Samples} samples in {split.Shards.Count} shard(s)"));
            for (int c = 0; c < m.Classes.Count; c++)
                s.AppendLine(
                    Inv(
                        $"  {m.Classes[c], -16} {split.ClassCounts[c], 8} ({100.0 * split.ClassCounts[c] / Math.Max(1, split.Samples):F1} %)"
                    )
                );
        }
        s.AppendLine("feature statistics (training split):");
        foreach (var (name, mean, std) in FeatureStatistics.Take(40))
            s.AppendLine(Inv($"  {name, -24} mean {mean, 10:F4}  std {std, 10:F4}"));
        if (FeatureStatistics.Count > 40)
            s.AppendLine(Inv($"  ... {FeatureStatistics.Count - 40} more"));
        s.AppendLine("shards:");
        foreach (var shard in m.Splits.Values.SelectMany(x => x.Shards))
            s.AppendLine(
                Inv($"  {shard.File}  {shard.Samples, 8} samples  {shard.Bytes, 12} bytes  sha256 {shard.Sha256[..16]}")
            );
        if (m.Skipped.Count > 0)
        {
            s.AppendLine(Inv($"skipped at preparation: {m.Skipped.Count}"));
            foreach (var k in m.Skipped.Take(10))
                s.AppendLine($"  {k.Item}: {k.Reason}");
        }
        int total = m.Splits.Values.Sum(x => x.Shards.Count);
        s.AppendLine(
            Verified
                ? Inv($"verified: all {total} shards match their SHA-256")
                : "not verified (add --verify to re-hash every shard)"
        );
        return s.ToString();
    }

    /// <summary>The report for machines.</summary>
    public string ToJson() =>
        JsonSerializer.Serialize(
            new Dictionary<string, object>
            {
                ["manifest"] = Manifest,
                ["feature_statistics"] = FeatureStatistics
                    .Select(x => new Dictionary<string, object>
                    {
                        ["name"] = x.Name,
                        ["mean"] = x.Mean,
                        ["std"] = x.Std,
                    })
                    .ToList(),
                ["verified"] = Verified,
            },
            new JsonSerializerOptions { WriteIndented = true }
        );
}
