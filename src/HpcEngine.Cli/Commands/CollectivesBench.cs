using HpcEngine.Benchmarks;
using HpcEngine.Distributed;

namespace HpcEngine.Cli.Commands;

/// <summary><c>hpcengine bench collectives</c>: the library's <see cref="CollectiveSweep"/> over the TCP backend, run
/// under a launcher; rank 0 prints the nccl-tests table and writes the JSON.</summary>
internal static class CollectivesBench
{
    public static int Run(BenchOptions o)
    {
        var op = TrainFlags.Parse("--op", o.Op, CollectiveSweepOptions.ParseOp);
        var options = new CollectiveSweepOptions(op, o.MinBytes, o.MaxBytes, o.Factor, o.Warmup, o.Iters, o.Check);
        if (o.MinBytes <= 0 || o.MaxBytes < o.MinBytes || o.Factor < 2)
            throw new ArgumentException("--min-bytes must be positive, --max-bytes at least --min-bytes and --factor at least 2");
        using var pg = ProcessGroups.InitFromEnvironment();
        bool lead = pg.Rank == 0;
        if (lead)
        {
            Console.WriteLine($"# {o.Op} over tcp, {pg.Size} ranks, float32, warmup {o.Warmup}, iters {o.Iters}");
            Console.WriteLine($"{"bytes",12} {"count",12} {"time(us)",12} {"algbw(GB/s)",12} {"busbw(GB/s)",12} {"#wrong",8}");
        }
        var points = CollectiveSweep.Run(pg, options, p =>
        {
            if (lead) Console.WriteLine($"{p.Bytes,12} {p.Count,12} {p.TimeMicroseconds,12:F1} {p.AlgBandwidthGBps,12:F3} {p.BusBandwidthGBps,12:F3} {p.Wrong,8}");
        });
        if (lead)
        {
            var results = points.Select(p => new Dictionary<string, object>
            {
                ["bytes"] = p.Bytes, ["time_us"] = Math.Round(p.TimeMicroseconds, 2), ["algbw_gbps"] = p.AlgBandwidthGBps, ["busbw_gbps"] = p.BusBandwidthGBps, ["wrong"] = p.Wrong,
            }).ToList();
            BenchCommand.WriteJson(o.Json, new Dictionary<string, object> { ["op"] = o.Op, ["world_size"] = pg.Size, ["backend"] = "tcp", ["results"] = results });
        }
        return 0;
    }
}
