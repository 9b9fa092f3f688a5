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
}
