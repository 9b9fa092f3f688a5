using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using HpcEngine.Data;
using HpcEngine.Data.Sharded;
using HpcEngine.Datasets;

namespace HpcEngine.Cli.Commands;

/// <summary>`bench loader`: how fast the DataLoader turns samples into training batches (shuffled, normalised,
/// prefetched) from Fashion-MNIST held in memory and from a prepared dataset's memory-mapped shards; --iters epochs
/// each, the median epoch reported, and the ratio.</summary>
internal static class LoaderBench
{
    public static int Run(BenchOptions o)
    {
        var rows = new List<Dictionary<string, object>>();
        var (train, test, source) = DataSources.LoadFashionMnist(o.Data);
        test.Dispose();
        using (train)
            rows.Add(Measure("in-memory IDX", source, train, o));
        if (o.Dataset != null)
            using (var sharded = ShardedDataset.Open(o.Dataset))
                rows.Add(Measure("sharded", o.Dataset, sharded, o));
        Console.WriteLine("| source | data | samples | epoch seconds (median) | samples/s |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var r in rows)
            Console.WriteLine(
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"| {r["source"]} | {r["data"]} | {r["samples"]} | {r["epoch_seconds"]:F3} | {r["samples_per_second"]:F0} |"
                )
            );
        if (rows.Count == 2)
            Console.WriteLine(
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"sharded / in-memory throughput: {(double)rows[1]["samples_per_second"] / (double)rows[0]["samples_per_second"]:F2}"
                )
            );
        if (o.Json != null)
            File.WriteAllText(
                o.Json,
                JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true })
            );
        return 0;
    }

    private static Dictionary<string, object> Measure(string name, string data, Dataset dataset, BenchOptions o)
    {
        var loader = new DataLoader(dataset, new DataLoaderOptions { BatchSize = o.BatchSize, Seed = 1 });
        var times = new List<double>();
        for (int epoch = 0; epoch <= o.Iters; epoch++) // epoch 0 warms up (page cache, JIT)
        {
            var clock = Stopwatch.StartNew();
            long samples = 0;
            foreach (var batch in loader.Epoch(epoch))
                using (batch)
                    samples += batch.Size;
            if (epoch > 0)
                times.Add(clock.Elapsed.TotalSeconds);
        }
        times.Sort();
        double median = times[times.Count / 2];
        return new Dictionary<string, object>
        {
            ["source"] = name,
            ["data"] = data,
            ["samples"] = dataset.Count,
            ["epoch_seconds"] = median,
            ["samples_per_second"] = dataset.Count / median,
        };
    }
}
