using HpcEngine.Compression;
using HpcEngine.NN;
using HpcEngine.Optim;
using HpcEngine.Parallel;

namespace HpcEngine.Tests.Distributed;

/// <summary>Live recovery's state transfer: ranks with different parameters, and an optimizer state that only the
/// root has (it stepped, the others not yet), end equal to the root's.</summary>
public class StateBroadcastTests
{
    [Test]
    public void Every_rank_ends_with_the_roots_parameters_optimizer_state_and_scalars()
    {
        var paramsOf = new float[3][];
        var moments = new float[3][];
        var scalars = new Dictionary<string, string>[3];
        Ranks.Run(3, pg =>
        {
            using var model = new Linear(4, 3, generator: new Generator((ulong)pg.Rank + 7));
            using var opt = new Adam(model.Parameters(), 0.01);
            if (pg.Rank == 1)
            {
                // The root has stepped once: Adam state exists there only.
                using var x = Tensor.Ones([2, 4]);
                using var y = model.Forward(x);
                using var loss = global::HpcEngine.Ops.Sum(y);
                loss.Backward();
                opt.Step();
            }
            scalars[pg.Rank] = StateBroadcast.Run(
                pg,
                1,
                model,
                opt,
                new Dictionary<string, string> { ["step"] = (10 + pg.Rank).ToString() }
            );
            paramsOf[pg.Rank] = model.Weight.ToArray<float>();
            var (state, _) = opt.StateDict();
            moments[pg.Rank] = state.OrderBy(kv => kv.Key).SelectMany(kv => kv.Value.ToArray<float>()).ToArray();
            foreach (var t in state.Values)
                t.Dispose();
        });
        Assert.That(moments[1], Is.Not.Empty, "the root's Adam moments");
        for (int r = 0; r < 3; r++)
        {
            Assert.That(paramsOf[r], Is.EqualTo(paramsOf[1]), $"rank {r}'s weights");
            Assert.That(moments[r], Is.EqualTo(moments[1]), $"rank {r}'s optimizer state");
            Assert.That(scalars[r]["step"], Is.EqualTo("11"), "the root's scalars");
        }
    }

    [Test]
    public void Error_feedback_residuals_stay_with_their_rank_and_a_joiner_gets_only_the_shared_codec_state()
    {
        // PowerSGD: each rank's residual is its own (what it has not sent yet); Q is the same on every rank.
        var before = new Dictionary<string, float[]>[3];
        var after = new Dictionary<string, float[]>[3];
        Ranks.Run(3, pg =>
        {
            using var model = new Linear(16, 8, generator: new Generator(5));
            using var strategy = new SyncStrategy(
                model,
                pg,
                new Sgd(model.Parameters(), 0.1),
                CodecSpec.Parse("powersgd:1").Create(3)
            );
            using (var x = Tensor.Randn([4, 16], generator: new Generator((ulong)pg.Rank + 11)))
            using (var y = model.Forward(x))
            using (var loss = global::HpcEngine.Ops.Sum(global::HpcEngine.Ops.Mul(y, y)))
                loss.Backward();
            strategy.Step();
            if (pg.Rank == 2)
                strategy.LoadStateDict(new Dictionary<string, Tensor>(), new Dictionary<string, string>()); // a joiner
            before[pg.Rank] = Values(strategy);
            StateBroadcast.Run(pg, 0, model, strategy.Optimizer, new Dictionary<string, string>(), strategy);
            after[pg.Rank] = Values(strategy);
        });
        Assert.That(before[0].Keys, Has.Some.StartsWith("codec.residual.").And.Some.StartsWith("codec.q."));
        Assert.That(
            before[0].First(kv => kv.Key.StartsWith("codec.residual.")).Value,
            Is.Not.EqualTo(before[1].First(kv => kv.Key.StartsWith("codec.residual.")).Value),
            "ranks' residuals differ"
        );
        for (int r = 0; r < 2; r++)
            Assert.That(after[r], Is.EqualTo(before[r]), $"rank {r} keeps its own residuals and Q");
        Assert.That(after[2].Keys.Where(k => k.StartsWith("codec.residual.")), Is.Empty, "the joiner has no residual");
        var q = after[0].Where(kv => kv.Key.StartsWith("codec.q.")).ToArray();
        Assert.That(q, Is.Not.Empty);
        foreach (var (k, v) in q)
            Assert.That(after[2][k], Is.EqualTo(v), $"the joiner's {k} is the root's");
    }

    private static Dictionary<string, float[]> Values(ITrainingStrategy strategy)
    {
        var (tensors, _) = strategy.StateDict();
        var values = tensors.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray<float>());
        foreach (var t in tensors.Values)
            t.Dispose();
        return values;
    }
}
