using HpcEngine.Benchmarks;
using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Cli.Commands;

/// <summary><c>hpcengine bench collectives</c>: the library's <see cref="CollectiveSweep"/> over the engine's backend
/// (shared memory or TCP per link, <c>--transport</c>), run under a launcher; rank 0 prints the nccl-tests table with
/// the transport of each of its links and writes the JSON.</summary>
internal static class CollectivesBench
{
    public static int Run(BenchOptions o)
    {
        var op = TrainFlags.Parse("--op", o.Op, CollectiveSweepOptions.ParseOp);
        var options = new CollectiveSweepOptions(
            op,
            o.MinBytes,
            o.MaxBytes,
            o.Factor,
            o.Warmup,
            o.Iters,
            o.Check,
            o.WarmupSeconds ?? 0
        );
        if (o.MinBytes <= 0 || o.MaxBytes < o.MinBytes || o.Factor < 2)
            throw new ArgumentException(
                "--min-bytes must be positive, --max-bytes at least --min-bytes and --factor at least 2"
            );
        var tcp = TcpOptions.FromEnvironment(DistributedEnvironment.Resolve().MasterAddr);
        if (o.Transport != null)
            tcp = tcp with { Transport = TrainFlags.Parse("--transport", o.Transport, TcpOptions.ParseTransport) };
        using var pg = ProcessGroups.InitFromEnvironment(tcp);
        bool lead = pg.Rank == 0;
        // Rank 0's links name the transport: "shm", "tcp", or "mixed" (same-host peers on shm, the others on TCP).
        var links = Enumerable.Range(0, pg.Size).Where(r => r != pg.Rank).Select(pg.TransportTo).ToList();
        string transport =
            links.Count == 0 ? "self"
            : links.Distinct().Count() == 1 ? links[0]
            : "mixed";
        if (lead)
        {
            Console.WriteLine(
                $"# {o.Op} over {transport} ({string.Join(", ", Enumerable.Range(0, pg.Size).Where(r => r != pg.Rank).Select(r => $"rank {r}: {pg.TransportTo(r)}"))}), {pg.Size} ranks, float32, warmup {o.Warmup}, iters {o.Iters}"
            );
            Console.WriteLine(
                $"{"bytes", 12} {"count", 12} {"time(us)", 12} {"algbw(GB/s)", 12} {"busbw(GB/s)", 12} {"#wrong", 8} {"algorithm", -10}"
            );
        }
        var points = CollectiveSweep.Run(pg, options, p =>
        {
            if (lead)
                Console.WriteLine(
                    $"{p.Bytes, 12} {p.Count, 12} {p.TimeMicroseconds, 12:F1} {p.AlgBandwidthGBps, 12:F3} "
                        + $"{p.BusBandwidthGBps, 12:F3} {p.Wrong, 8} {Algorithm(pg, op, p.Bytes), -10}"
                );
        });
        if (lead)
        {
            var results = points
                .Select(p => new Dictionary<string, object>
                {
                    ["bytes"] = p.Bytes,
                    ["algorithm"] = Algorithm(pg, op, p.Bytes),
                    ["time_us"] = Math.Round(p.TimeMicroseconds, 2),
                    ["algbw_gbps"] = p.AlgBandwidthGBps,
                    ["busbw_gbps"] = p.BusBandwidthGBps,
                    ["wrong"] = p.Wrong,
                })
                .ToList();
            BenchCommand.WriteJson(
                o.Json,
                new Dictionary<string, object>
                {
                    ["op"] = o.Op,
                    ["world_size"] = pg.Size,
                    ["backend"] = "tcp",
                    ["transport"] = transport,
                    ["links"] = Enumerable.Range(0, pg.Size).Select(pg.TransportTo).ToList(),
                    ["results"] = results,
                }
            );
        }
        return 0;
    }

    /// <summary>The algorithm the backend picks for <paramref name="op"/> at this size (docs/ARCHITECTURE.md,
    /// collective layer): the allreduce's own choice (recursive doubling for small messages — "rd-shm" when it runs
    /// over the shared-memory exchange rings —, the pipelined ring above, hierarchical across hosts); a one-round send to the root for small reduces; chain broadcast, ring allgather and
    /// reduce-scatter (hierarchical across hosts above the small-message size); direct all-to-all and send/recv.</summary>
    private static string Algorithm(TcpProcessGroup pg, CollectiveOp op, long bytes) =>
        op switch
        {
            CollectiveOp.AllReduce when pg.RunsOnExchange(bytes) => "rd-shm",
            CollectiveOp.AllReduce => pg.ChosenAlgorithm(bytes) switch
            {
                AllReduceAlgorithm.RecursiveDoubling => "rdoubling",
                AllReduceAlgorithm.Hierarchical => "hierarchical",
                AllReduceAlgorithm.Direct => "direct",
                _ => "ring",
            },
            CollectiveOp.Reduce => bytes <= pg.Options.SmallMessageBytes ? "direct" : "ring+gather",
            CollectiveOp.Broadcast => pg.IsHierarchical(bytes) ? "hierarchical" : "chain",
            CollectiveOp.AllGather or CollectiveOp.ReduceScatter => pg.IsHierarchical(bytes) ? "hierarchical" : "ring",
            _ => "direct",
        };
}
