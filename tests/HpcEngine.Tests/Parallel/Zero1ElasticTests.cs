using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;
using HpcEngine.NN;
using HpcEngine.Optim;
using HpcEngine.Parallel;
using HpcEngine.Tests.Distributed;

namespace HpcEngine.Tests.Parallel;

/// <summary>Zero1's buddy copies and the re-partition of its optimizer shards after a loss.</summary>
public class Zero1ElasticTests
{
    private static Sequential Model() =>
        new(new Linear(13, 9, generator: new Generator(1)), new ReLU(), new Linear(9, 4, generator: new Generator(51)));

    private static float[] Train(Zero1Strategy s, Module m, int rank, int steps)
    {
        for (int step = 0; step < steps; step++)
        {
            using var scope = new TensorScope();
            var x = Tensor.Randn([12, 13], DType.Float32, new Generator(300 + (ulong)step));
            var y = Tensor.Randint(0, 4, [12], generator: new Generator(400 + (ulong)step));
            F.CrossEntropy(m.Forward(x.Narrow(0, rank * 4, 4)), y.Narrow(0, rank * 4, 4)).Backward();
            s.Step();
        }
        return m.Parameters().SelectMany(p => p.ToArray<float>()).ToArray();
    }

    [Test]
    public void Buddy_copies_change_no_arithmetic_and_each_rank_holds_its_predecessors_shard_state()
    {
        var plain = new float[3][];
        var buddied = new float[3][];
        var own = new Dictionary<string, float[]>[3];
        var copy = new Dictionary<string, float[]>?[3];
        Ranks.Run(3, pg =>
        {
            using (var m = Model())
            using (var s = new Zero1Strategy(m, pg, ps => new Adam(ps, 1e-2)))
                plain[pg.Rank] = Train(s, m, pg.Rank, 3);
            using (var m = Model())
            using (var s = new Zero1Strategy(m, pg, ps => new Adam(ps, 1e-2), buddyCopies: true))
            {
                buddied[pg.Rank] = Train(s, m, pg.Rank, 3);
                using var export = s.ExportShards(advance: false)!;
                own[pg.Rank] = export.Own.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray<float>());
                copy[pg.Rank] = export.Buddy?.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray<float>());
            }
        });
        for (int r = 0; r < 3; r++)
        {
            Assert.That(buddied[r], Is.EqualTo(plain[r]), $"rank {r}: the same parameters with and without copies");
            int prev = (r + 2) % 3;
            Assert.That(copy[r], Is.Not.Null);
            Assert.That(copy[r]!.Keys, Is.EquivalentTo(new[] { "state.0.exp_avg", "state.0.exp_avg_sq" }));
            foreach (var (name, values) in copy[r]!)
                Assert.That(values, Is.EqualTo(own[prev][name]), $"rank {r}'s copy of rank {prev}'s {name}");
        }
    }

    private static ShardedState Shard(int rank, int world, float[] own, float[]? buddy) =>
        new()
        {
            OldRank = rank,
            OldWorld = world,
            ShardSize = own.Length,
            Own = new() { ["state.0.m"] = Tensor.FromArray(own), ["state.0.step"] = Tensor.FromArray(new[] { 7f }) },
            Scalars = new() { ["steps"] = "7" },
            Buddy = buddy != null ? new() { ["state.0.m"] = Tensor.FromArray(buddy) } : null,
        };

    [Test]
    public void A_lost_ranks_shard_comes_from_its_neighbours_copy_and_replicated_entries_from_the_root()
    {
        // Old group of 3, shards of 2: rank 1 is lost (a joiner takes its place, with nothing); rank 2 holds its copy.
        float[][] shards =
        [
            [1, 2],
            [3, 4],
            [5, 6],
        ];
        var full = new float[3][];
        var step = new float[3][];
        Ranks.Run(3, pg =>
        {
            using var mine = pg.Rank switch
            {
                0 => Shard(0, 3, shards[0], shards[2]),
                2 => Shard(2, 3, shards[2], shards[1]),
                _ => null,
            };
            var (f, replicated, scalars) = ShardRepartition.Assemble(pg, 0, mine);
            full[pg.Rank] = f["state.0.m"].ToArray<float>();
            step[pg.Rank] = replicated["state.0.step"].ToArray<float>();
            Assert.That(scalars["steps"], Is.EqualTo("7"));
            foreach (var t in f.Values.Concat(replicated.Values))
                t.Dispose();
        });
        for (int r = 0; r < 3; r++)
        {
            Assert.That(full[r], Is.EqualTo(new float[] { 1, 2, 3, 4, 5, 6 }), $"rank {r}");
            Assert.That(step[r], Is.EqualTo(new[] { 7f }));
        }
    }

    [Test]
    public void Losing_a_rank_and_the_holder_of_its_copy_is_a_typed_error_that_says_to_resume()
    {
        var errors = Ranks.RunExpectingFailures(
            3,
            pg =>
            {
                using var mine = pg.Rank == 0 ? Shard(0, 3, [1, 2], [5, 6]) : null; // ranks 1 and 2 both lost
                ShardRepartition.Assemble(pg, 0, mine);
            },
            new TcpOptions { Timeout = TimeSpan.FromSeconds(30), ConnectTimeout = TimeSpan.FromSeconds(20) },
            60
        );
        foreach (var e in errors)
        {
            Assert.That(e, Is.TypeOf<HpcEngine.Distributed.Elastic.ElasticStateLostException>());
            Assert.That(
                e!.Message,
                Does.Contain("the optimizer shard of rank 1 of 3 is lost with it, and its copy with rank 2")
            );
            Assert.That(e.Message, Does.Contain("resume from the last checkpoint"));
        }
    }
}
