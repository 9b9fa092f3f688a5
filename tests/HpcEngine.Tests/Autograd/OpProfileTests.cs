using HpcEngine.Autograd;

namespace HpcEngine.Tests.Autograd;

/// <summary>The per-op profile: every recorded op of a step appears once per call in forward and its rule in
/// backward, sections are charged what they ran, nothing is measured outside a profile, and a finished profile stops
/// measuring.</summary>
public class OpProfileTests
{
    [Test]
    public void A_step_is_charged_op_by_op_forward_and_backward()
    {
        using var scope = new TensorScope();
        var x = Tensor.Randn([4, 2, 6, 6], DType.Float32, new Generator(1));
        var w = Tensor.Randn([3, 2, 3, 3], DType.Float32, new Generator(2)).RequiresGrad_();
        using var profile = OpProfile.Start(); // starts the forward clock; after that only Time marks it
        for (int i = 0; i < 2; i++)
        {
            var y = HpcEngine.Ops.Sum(HpcEngine.Ops.Relu(F.Conv2d(x, w, padding: 1)));
            y.Backward();
            profile.Time("sleep", "update", () => Thread.Sleep(200));
        }
        var e = profile.Entries.ToDictionary(r => (r.Op, r.Phase));
        foreach (var op in new[] { "conv2d", "relu", "sum" })
        {
            Assert.That(e[(op, "forward")].Calls, Is.EqualTo(2), op);
            Assert.That(e[(op, "backward")].Calls, Is.EqualTo(2), op);
        }
        Assert.That(e[("sleep", "update")].Seconds, Is.GreaterThanOrEqualTo(0.39), "both sections, 200 ms each");
        Assert.That(
            e[("conv2d", "forward")].Seconds,
            Is.LessThan(0.2),
            "the forward clock is marked after a section: the second step's first op is not charged the 200 ms sleep "
                + "(two convolutions of 4 tiny images take well under that)"
        );
        Assert.That(profile.Entries[0].Op, Is.EqualTo("sleep"), "longest first");
    }

    [Test]
    public void Nothing_is_measured_outside_a_profile_or_after_it_ends()
    {
        using var scope = new TensorScope();
        var a = Tensor.Randn([3], DType.Float32, new Generator(1)).RequiresGrad_();
        var outer = OpProfile.Start();
        HpcEngine.Ops.Sum(a).Backward();
        var inner = OpProfile.Start();
        HpcEngine.Ops.Exp(a);
        inner.Dispose();
        HpcEngine.Ops.Sum(a).Backward();
        outer.Dispose();
        HpcEngine.Ops.Sum(a).Backward();
        var counts = outer.Entries.ToDictionary(r => (r.Op, r.Phase), r => r.Calls);
        Assert.That(counts[("sum", "forward")], Is.EqualTo(2), "before and after the inner profile, not after its end");
        Assert.That(counts.ContainsKey(("exp", "forward")), Is.False, "the inner profile took the exp");
        Assert.That(inner.Entries.Select(r => r.Op), Is.EqualTo(new[] { "exp" }));
        Assert.That(OpProfile.Current, Is.Null);
    }
}
