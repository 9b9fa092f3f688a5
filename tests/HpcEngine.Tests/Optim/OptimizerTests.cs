using HpcEngine.IO;
using HpcEngine.Optim;

namespace HpcEngine.Tests.Optim;

/// <summary>Optimizer trajectories against torch.optim (tests/fixtures/make_optim_fixtures.py).</summary>
[TestFixture]
public class OptimizerTests
{
    private static SafetensorsFile _f = null!;

    [OneTimeSetUp]
    public void Open() =>
        _f = Safetensors.Open(Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", "optim.safetensors"));

    [OneTimeTearDown]
    public void Close() => _f.Dispose();

    private static readonly Dictionary<string, Func<Tensor[], Optimizer>> Cases = new()
    {
        ["sgd"] = p => new Sgd(p, 0.1),
        ["sgd_momentum"] = p => new Sgd(p, 0.05, momentum: 0.9),
        ["sgd_nesterov_wd"] = p => new Sgd(p, 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-2),
        ["adam"] = p => new Adam(p, 1e-2),
        ["adam_wd"] = p => new Adam(p, 1e-2, weightDecay: 0.1),
        ["adamw"] = p => new AdamW(p, 1e-2, weightDecay: 0.1),
        ["sgd_momentum_sched"] = p => new Sgd(p, 0.1, momentum: 0.9),
    };

    public static IEnumerable<string> Names => Cases.Keys;

    [TestCaseSource(nameof(Names))]
    public void Matches_torch_optim_step_by_step(string name)
    {
        using var p = _f.Read($"{name}.p0").RequiresGrad_();
        using var opt = Cases[name]([p]);
        LrSchedule? sched = name.EndsWith("_sched", StringComparison.Ordinal)
            ? new CosineWithWarmup(0.1, totalSteps: 5, warmupSteps: 2)
            : null;
        var lrs = sched != null ? _f.Read($"{name}.lr").ToArray<double>() : null;
        for (int k = 0; k < 5; k++)
        {
            p.Grad = _f.Read($"{name}.g{k}").DetachFromScope();
            if (sched != null)
            {
                sched.Apply(opt, k);
                Assert.That(opt.Lr, Is.EqualTo(lrs![k]).Within(1e-12), $"lr at step {k}");
            }
            opt.Step();
            var want = _f.Read($"{name}.p{k + 1}").ToArray<float>();
            Assert.That(p.ToArray<float>(), Is.EqualTo(want).Within(2e-6), $"{name} after step {k + 1}");
        }
    }

    [TestCase("sgd_momentum")]
    [TestCase("adamw")]
    public void State_dict_resumes_the_same_trajectory(string name)
    {
        // 2 steps, save, load into a fresh optimizer, 3 more steps == 5 steps straight.
        using var p = _f.Read($"{name}.p0").RequiresGrad_();
        using var q = _f.Read($"{name}.p0").RequiresGrad_();
        using var straight = Cases[name]([p]);
        using var first = Cases[name]([q]);
        for (int k = 0; k < 2; k++)
        {
            p.Grad = _f.Read($"{name}.g{k}").DetachFromScope();
            straight.Step();
            q.Grad = _f.Read($"{name}.g{k}").DetachFromScope();
            first.Step();
        }
        var (tensors, scalars) = first.StateDict();
        using var second = Cases[name]([q]);
        second.LoadStateDict(tensors, scalars);
        Assert.That(second.Steps, Is.EqualTo(2));
        for (int k = 2; k < 5; k++)
        {
            p.Grad = _f.Read($"{name}.g{k}").DetachFromScope();
            straight.Step();
            q.Grad = _f.Read($"{name}.g{k}").DetachFromScope();
            second.Step();
        }
        Assert.That(q.ToBytes(), Is.EqualTo(p.ToBytes()), "bitwise identical");
    }

    [Test]
    public void Loading_another_optimizers_state_is_refused()
    {
        using var p = Tensor.Zeros([3]).RequiresGrad_();
        using var sgd = new Sgd([p], 0.1, momentum: 0.9);
        p.Grad = Tensor.Ones([3]).DetachFromScope();
        sgd.Step();
        var (t, s) = sgd.StateDict();
        using var adam = new Adam([p]);
        Assert.Throws<InvalidOperationException>(() => adam.LoadStateDict(t, s));
    }

    [Test]
    public void Schedules_give_the_documented_rates()
    {
        var cos = new CosineWithWarmup(1.0, totalSteps: 110, warmupSteps: 10, minLr: 0.1);
        Assert.That(cos.At(0), Is.EqualTo(0.1).Within(1e-12));
        Assert.That(cos.At(9), Is.EqualTo(1.0).Within(1e-12));
        Assert.That(cos.At(10), Is.EqualTo(1.0).Within(1e-12));
        Assert.That(cos.At(60), Is.EqualTo(0.55).Within(1e-12));
        Assert.That(cos.At(110), Is.EqualTo(0.1).Within(1e-12));
        Assert.That(cos.At(500), Is.EqualTo(0.1).Within(1e-12));
        var step = new StepLr(0.5, stepSize: 10, gamma: 0.1);
        Assert.That(
            new[] { step.At(0), step.At(9), step.At(10), step.At(25) },
            Is.EqualTo(new[] { 0.5, 0.5, 0.05, 0.005 }).Within(1e-15)
        );
    }

    [Test]
    public void Clipping_scales_to_the_global_norm_and_reports_it()
    {
        using var a = Tensor.Zeros([2]).RequiresGrad_();
        using var b = Tensor.Zeros([1]).RequiresGrad_();
        a.Grad = Tensor.FromArray([3f, 0f]).DetachFromScope();
        b.Grad = Tensor.FromArray([4f]).DetachFromScope();
        double norm = GradClip.ClipGradNorm([a, b], 1.0);
        Assert.That(norm, Is.EqualTo(5).Within(1e-6));
        Assert.That(a.Grad.ToArray<float>()[0], Is.EqualTo(0.6f).Within(1e-5));
        Assert.That(b.Grad.ToArray<float>()[0], Is.EqualTo(0.8f).Within(1e-5));
        Assert.That(GradClip.ClipGradNorm([a, b], 10), Is.EqualTo(1).Within(1e-5), "below the bound nothing changes");
    }
}
