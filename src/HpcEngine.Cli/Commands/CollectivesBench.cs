using System.Diagnostics;
using HpcEngine.Distributed;

namespace HpcEngine.Cli.Commands;

/// <summary>`hpcengine bench collectives`: the nccl-tests sweep over the TCP backend, run under a launcher. For each
/// size: time per op (mean of --iters after --warmup, the slowest rank's), algbw = bytes / time and busbw = algbw ×
/// the op's factor (allreduce 2(n−1)/n, allgather, reduce-scatter and all-to-all (n−1)/n, broadcast, reduce and
/// sendrecv 1), and with --check the number of wrong elements against the closed form. sendrecv is nccl-tests' ring
/// exchange: every rank sends to the next and receives from the previous at once.</summary>
internal static class CollectivesBench
{
    public static int Run(BenchOptions o)
    {
        if (o.MinBytes <= 0 || o.MaxBytes < o.MinBytes || o.Factor < 2)
            throw new ArgumentException("--min-bytes must be positive, --max-bytes at least --min-bytes and --factor at least 2");
        if (o.Op is not ("allreduce" or "broadcast" or "reduce" or "allgather" or "reducescatter" or "alltoall" or "sendrecv"))
            throw new ArgumentException($"--op must be allreduce, broadcast, reduce, allgather, reducescatter, alltoall or sendrecv, got '{o.Op}'");
        using var pg = ProcessGroups.InitFromEnvironment();
        int n = pg.Size;
        bool blocks = o.Op is "allgather" or "reducescatter" or "alltoall";
        double factor = o.Op switch { "allreduce" => 2.0 * (n - 1) / n, "broadcast" or "reduce" or "sendrecv" => 1, _ => (double)(n - 1) / n };
        var results = new List<Dictionary<string, object>>();
        if (pg.Rank == 0)
        {
            Console.WriteLine($"# {o.Op} over tcp, {n} ranks, float32, warmup {o.Warmup}, iters {o.Iters}");
            Console.WriteLine($"{"bytes",12} {"count",12} {"time(us)",12} {"algbw(GB/s)",12} {"busbw(GB/s)",12} {"#wrong",8}");
        }
        for (long bytes = o.MinBytes; bytes <= o.MaxBytes; bytes *= o.Factor)
        {
            int count = (int)Math.Max(1, bytes / 4);
            if (blocks) count = Math.Max(1, count / n) * n; // divisible across ranks
            long actual = (long)count * 4;
            long wrong = o.Check ? Check(pg, o.Op, count) : 0;
            using var x = Tensor.Zeros([count]);
            using var part = Tensor.Zeros([o.Op is "allgather" or "reducescatter" ? count / n : count]);
            Work Op() => o.Op switch
            {
                "allreduce" => pg.AllReduce(x),
                "broadcast" => pg.Broadcast(x),
                "reduce" => pg.Reduce(x),
                "allgather" => pg.AllGather(x, part),
                "alltoall" => pg.AllToAll(part, x),
                "sendrecv" => SendRecv(pg, x, part),
                _ => pg.ReduceScatter(part, x),
            };
            for (int i = 0; i < o.Warmup; i++) Op().Wait();
            pg.Barrier().Wait();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < o.Iters; i++) Op().Wait();
            double us = sw.Elapsed.TotalMilliseconds * 1000 / o.Iters;
            // The slowest rank's time and everyone's wrong count decide.
            using var stats = Tensor.FromArray([us, wrong]);
            pg.AllReduce(stats, new AllReduceOptions { Op = ReduceOp.Max }).Wait();
            var s = stats.ToArray<double>();
            double algbw = actual / (s[0] * 1e-6) / 1e9;
            if (pg.Rank == 0)
            {
                Console.WriteLine($"{actual,12} {count,12} {s[0],12:F1} {algbw,12:F3} {algbw * factor,12:F3} {(long)s[1],8}");
                results.Add(new() { ["bytes"] = actual, ["time_us"] = Math.Round(s[0], 2), ["algbw_gbps"] = algbw, ["busbw_gbps"] = algbw * factor, ["wrong"] = (long)s[1] });
            }
        }
        if (pg.Rank == 0)
            BenchCommand.WriteJson(o.Json, new Dictionary<string, object> { ["op"] = o.Op, ["world_size"] = n, ["backend"] = "tcp", ["results"] = results });
        pg.Barrier().Wait();
        return 0;
    }

    /// <summary>Sends <paramref name="x"/> to the next rank while receiving the previous rank's into <paramref name="into"/>.</summary>
    private static Work SendRecv(IProcessGroup pg, Tensor x, Tensor into)
    {
        int n = pg.Size, r = pg.Rank;
        if (n == 1)
        {
            into.CopyFrom(x);
            return Work.Done;
        }
        var recv = pg.Recv(into, (r + n - 1) % n);
        var send = pg.Send(x, (r + 1) % n);
        send.Wait();
        return recv;
    }

    /// <summary>Runs the op once on rank-dependent data x_r[i] = (r+1)·(i mod 7 + 1) and counts elements that differ
    /// from the closed form.</summary>
    private static long Check(IProcessGroup pg, string op, int count)
    {
        int n = pg.Size, r = pg.Rank;
        float Value(int rank, int i) => (rank + 1) * (i % 7 + 1);
        long wrong = 0;
        switch (op)
        {
            case "allreduce":
            {
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                pg.AllReduce(x).Wait();
                var got = x.ToArray<float>();
                for (int i = 0; i < count; i++) if (got[i] != n * (n + 1) / 2f * (i % 7 + 1)) wrong++;
                break;
            }
            case "reduce":
            {
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                pg.Reduce(x).Wait();
                if (r != 0) break; // only the root's result is defined
                var got = x.ToArray<float>();
                for (int i = 0; i < count; i++) if (got[i] != n * (n + 1) / 2f * (i % 7 + 1)) wrong++;
                break;
            }
            case "alltoall":
            {
                int block = count / n;
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                using var got = Tensor.Zeros([count]);
                pg.AllToAll(got, x).Wait();
                var g = got.ToArray<float>();
                // Slice s of this rank's output is slice r of rank s's input.
                for (int i = 0; i < count; i++) if (g[i] != Value(i / block, r * block + i % block)) wrong++;
                break;
            }
            case "sendrecv":
            {
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                using var got = Tensor.Zeros([count]);
                SendRecv(pg, x, got).Wait();
                var g = got.ToArray<float>();
                for (int i = 0; i < count; i++) if (g[i] != Value((r + n - 1) % n, i)) wrong++;
                break;
            }
            case "broadcast":
            {
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                pg.Broadcast(x).Wait();
                var got = x.ToArray<float>();
                for (int i = 0; i < count; i++) if (got[i] != Value(0, i)) wrong++;
                break;
            }
            case "allgather":
            {
                int block = count / n;
                using var mine = Tensor.FromArray(Enumerable.Range(0, block).Select(i => Value(r, i)).ToArray());
                using var all = Tensor.Zeros([count]);
                pg.AllGather(all, mine).Wait();
                var got = all.ToArray<float>();
                for (int i = 0; i < count; i++) if (got[i] != Value(i / block, i % block)) wrong++;
                break;
            }
            default:
            {
                int block = count / n;
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                using var part = Tensor.Zeros([block]);
                pg.ReduceScatter(part, x).Wait();
                var got = part.ToArray<float>();
                for (int i = 0; i < block; i++) if (got[i] != n * (n + 1) / 2f * ((r * block + i) % 7 + 1)) wrong++;
                break;
            }
        }
        return wrong;
    }
}
