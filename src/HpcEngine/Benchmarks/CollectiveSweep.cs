using System.Diagnostics;
using HpcEngine.Distributed;
using HpcEngine.Training;

namespace HpcEngine.Benchmarks;

/// <summary>The collectives a sweep measures.</summary>
public enum CollectiveOp
{
    /// <summary>Sum over ranks, result on every rank.</summary>
    AllReduce,

    /// <summary>Rank 0's tensor to every rank.</summary>
    Broadcast,

    /// <summary>Sum over ranks, result on rank 0.</summary>
    Reduce,

    /// <summary>Every rank's block, concatenated on every rank.</summary>
    AllGather,

    /// <summary>Sum over ranks, each rank keeping its block.</summary>
    ReduceScatter,

    /// <summary>Block s of rank r to rank s.</summary>
    AllToAll,

    /// <summary>nccl-tests' ring exchange: to the next rank, from the previous.</summary>
    SendRecv,
}

/// <summary>What a collective sweep measures: sizes from <see cref="MinBytes"/> to <see cref="MaxBytes"/> by
/// <see cref="Factor"/>, <see cref="Iters"/> timed operations after <see cref="Warmup"/>; with <see cref="Check"/>
/// the result is compared against the closed form first. <see cref="WarmupSeconds"/> runs the first size's op for
/// at least that long before anything is timed: .NET compiles hot methods a second time, optimised, some 100 ms
/// after they first ran, so a sweep of short ops timed from a cold start measures the first tier's code (a 4 KB
/// allreduce over shared memory: 3-8 µs cold against under 2 µs warm, on the 2-core VM).</summary>
public sealed record CollectiveSweepOptions(
    CollectiveOp Op,
    long MinBytes = 1024,
    long MaxBytes = 64L << 20,
    int Factor = 2,
    int Warmup = 3,
    int Iters = 20,
    bool Check = false,
    double WarmupSeconds = 0
)
{
    /// <summary>Parses an op's name as the CLI spells it: allreduce, broadcast, reduce, allgather, reducescatter,
    /// alltoall or sendrecv.</summary>
    public static CollectiveOp ParseOp(string text) =>
        text switch
        {
            "allreduce" => CollectiveOp.AllReduce,
            "broadcast" => CollectiveOp.Broadcast,
            "reduce" => CollectiveOp.Reduce,
            "allgather" => CollectiveOp.AllGather,
            "reducescatter" => CollectiveOp.ReduceScatter,
            "alltoall" => CollectiveOp.AllToAll,
            "sendrecv" => CollectiveOp.SendRecv,
            _ => throw new ArgumentException(
                $"op must be allreduce, broadcast, reduce, allgather, reducescatter, alltoall or sendrecv, got '{text}'"
            ),
        };
}

/// <summary>One size of a sweep: the slowest rank's mean time per op, algbw = bytes / time, busbw = algbw × the op's
/// factor, and the elements that differed from the closed form (0 without a check, summed over ranks).</summary>
public sealed record CollectiveSweepPoint(
    long Bytes,
    int Count,
    double TimeMicroseconds,
    double AlgBandwidthGBps,
    double BusBandwidthGBps,
    long Wrong
);

/// <summary>The nccl-tests sweep over any process group: every rank calls <see cref="Run"/> together. busbw's factor
/// is nccl-tests' (allreduce 2(n−1)/n; allgather, reduce-scatter and all-to-all (n−1)/n; broadcast, reduce and
/// sendrecv 1). sendrecv is nccl-tests' ring exchange: every rank sends to the next and receives from the previous at
/// once.</summary>
public static class CollectiveSweep
{
    /// <summary>nccl-tests' bus-bandwidth factor of <paramref name="op"/> on <paramref name="ranks"/> ranks.</summary>
    public static double BusFactor(CollectiveOp op, int ranks) =>
        op switch
        {
            CollectiveOp.AllReduce => 2.0 * (ranks - 1) / ranks,
            CollectiveOp.Broadcast or CollectiveOp.Reduce or CollectiveOp.SendRecv => 1,
            _ => (double)(ranks - 1) / ranks,
        };

    /// <summary>Runs <paramref name="op"/> in rounds until rank 0 has spent <paramref name="seconds"/> on them; rank 0's
    /// verdict after each round is broadcast, so every rank runs the same number of ops.</summary>
    private static void WarmUpFor(IProcessGroup pg, Func<Work> op, double seconds)
    {
        var clock = Stopwatch.StartNew();
        bool again;
        do
        {
            for (int i = 0; i < 64; i++)
                op().Wait();
            using var more = Tensor.FromArray([clock.Elapsed.TotalSeconds < seconds ? 1f : 0f]);
            pg.Broadcast(more).Wait();
            again = more.ToArray<float>()[0] != 0;
        } while (again);
    }

    /// <summary>Runs the sweep; every rank gets the same points (the slowest rank's time, every rank's wrong count).
    /// <paramref name="onPoint"/> hears of each size as it is measured.</summary>
    public static IReadOnlyList<CollectiveSweepPoint> Run(
        IProcessGroup pg,
        CollectiveSweepOptions o,
        Action<CollectiveSweepPoint>? onPoint = null
    )
    {
        ArgumentNullException.ThrowIfNull(pg);
        ArgumentNullException.ThrowIfNull(o);
        if (o.MinBytes <= 0 || o.MaxBytes < o.MinBytes || o.Factor < 2)
            throw new SettingsException(
                nameof(o.MinBytes),
                "{MinBytes} must be positive, {MaxBytes} at least {MinBytes} and {Factor} at least 2"
            );
        if (o.Iters < 1 || o.Warmup < 0 || !(o.WarmupSeconds >= 0))
            throw new SettingsException(
                nameof(o.Iters),
                "{Iters} must be at least 1, {Warmup} and {WarmupSeconds} 0 or more"
            );
        int n = pg.Size;
        bool blocks = o.Op is CollectiveOp.AllGather or CollectiveOp.ReduceScatter or CollectiveOp.AllToAll;
        double factor = BusFactor(o.Op, n);
        var points = new List<CollectiveSweepPoint>();
        for (long bytes = o.MinBytes; bytes <= o.MaxBytes; bytes *= o.Factor)
        {
            int count = (int)Math.Max(1, bytes / 4);
            if (blocks)
                count = Math.Max(1, count / n) * n; // divisible across ranks
            long actual = (long)count * 4;
            long wrong = o.Check ? Check(pg, o.Op, count) : 0;
            using var x = Tensor.Zeros([count]);
            using var part = Tensor.Zeros([
                o.Op is CollectiveOp.AllGather or CollectiveOp.ReduceScatter ? count / n : count,
            ]);
            Work Op() =>
                o.Op switch
                {
                    CollectiveOp.AllReduce => pg.AllReduce(x),
                    CollectiveOp.Broadcast => pg.Broadcast(x),
                    CollectiveOp.Reduce => pg.Reduce(x),
                    CollectiveOp.AllGather => pg.AllGather(x, part),
                    CollectiveOp.AllToAll => pg.AllToAll(part, x),
                    CollectiveOp.SendRecv => SendRecv(pg, x, part),
                    _ => pg.ReduceScatter(part, x),
                };
            if (bytes == o.MinBytes && o.WarmupSeconds > 0)
                WarmUpFor(pg, Op, o.WarmupSeconds);
            for (int i = 0; i < o.Warmup; i++)
                Op().Wait();
            pg.Barrier().Wait();
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < o.Iters; i++)
                Op().Wait();
            double us = sw.Elapsed.TotalMilliseconds * 1000 / o.Iters;
            // The slowest rank's time and everyone's wrong count decide.
            using var stats = Tensor.FromArray([us, wrong]);
            pg.AllReduce(stats, new AllReduceOptions { Op = ReduceOp.Max }).Wait();
            var s = stats.ToArray<double>();
            double algbw = actual / (s[0] * 1e-6) / 1e9;
            var point = new CollectiveSweepPoint(actual, count, s[0], algbw, algbw * factor, (long)s[1]);
            points.Add(point);
            onPoint?.Invoke(point);
        }
        pg.Barrier().Wait();
        return points;
    }

    /// <summary>Sends <paramref name="x"/> to the next rank while receiving the previous rank's into <paramref
    /// name="into"/>.</summary>
    private static Work SendRecv(IProcessGroup pg, Tensor x, Tensor into)
    {
        int n = pg.Size,
            r = pg.Rank;
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
    private static long Check(IProcessGroup pg, CollectiveOp op, int count)
    {
        int n = pg.Size,
            r = pg.Rank;
        float Value(int rank, int i) => (rank + 1) * (i % 7 + 1);
        long wrong = 0;
        switch (op)
        {
            case CollectiveOp.AllReduce:
            {
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                pg.AllReduce(x).Wait();
                var got = x.ToArray<float>();
                for (int i = 0; i < count; i++)
                    if (got[i] != n * (n + 1) / 2f * (i % 7 + 1))
                        wrong++;
                break;
            }
            case CollectiveOp.Reduce:
            {
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                pg.Reduce(x).Wait();
                if (r != 0)
                    break; // only the root's result is defined
                var got = x.ToArray<float>();
                for (int i = 0; i < count; i++)
                    if (got[i] != n * (n + 1) / 2f * (i % 7 + 1))
                        wrong++;
                break;
            }
            case CollectiveOp.AllToAll:
            {
                int block = count / n;
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                using var got = Tensor.Zeros([count]);
                pg.AllToAll(got, x).Wait();
                var g = got.ToArray<float>();
                // Slice s of this rank's output is slice r of rank s's input.
                for (int i = 0; i < count; i++)
                    if (g[i] != Value(i / block, r * block + i % block))
                        wrong++;
                break;
            }
            case CollectiveOp.SendRecv:
            {
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                using var got = Tensor.Zeros([count]);
                SendRecv(pg, x, got).Wait();
                var g = got.ToArray<float>();
                for (int i = 0; i < count; i++)
                    if (g[i] != Value((r + n - 1) % n, i))
                        wrong++;
                break;
            }
            case CollectiveOp.Broadcast:
            {
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                pg.Broadcast(x).Wait();
                var got = x.ToArray<float>();
                for (int i = 0; i < count; i++)
                    if (got[i] != Value(0, i))
                        wrong++;
                break;
            }
            case CollectiveOp.AllGather:
            {
                int block = count / n;
                using var mine = Tensor.FromArray(Enumerable.Range(0, block).Select(i => Value(r, i)).ToArray());
                using var all = Tensor.Zeros([count]);
                pg.AllGather(all, mine).Wait();
                var got = all.ToArray<float>();
                for (int i = 0; i < count; i++)
                    if (got[i] != Value(i / block, i % block))
                        wrong++;
                break;
            }
            default:
            {
                int block = count / n;
                using var x = Tensor.FromArray(Enumerable.Range(0, count).Select(i => Value(r, i)).ToArray());
                using var part = Tensor.Zeros([block]);
                pg.ReduceScatter(part, x).Wait();
                var got = part.ToArray<float>();
                for (int i = 0; i < block; i++)
                    if (got[i] != n * (n + 1) / 2f * ((r * block + i) % 7 + 1))
                        wrong++;
                break;
            }
        }
        return wrong;
    }
}
