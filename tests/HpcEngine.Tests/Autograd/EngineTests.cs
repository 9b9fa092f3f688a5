using HpcEngine.Autograd;

namespace HpcEngine.Tests.Autograd;

[TestFixture]
public class EngineTests
{
    [Test]
    public void Gradients_accumulate_across_backward_calls()
    {
        using var x = Tensor.FromArray([1.0, 2.0, 3.0]).RequiresGrad_();
        (x * x).Sum().Backward();
        (x * x).Sum().Backward();
        Assert.That(x.Grad!.ToArray<double>(), Is.EqualTo(new[] { 4.0, 8.0, 12.0 }));
    }

    [Test]
    public void A_used_twice_input_sums_both_paths()
    {
        using var x = Tensor.FromArray([3.0]).RequiresGrad_();
        var y = x * x + x * 2.0; // dy/dx = 2x + 2 = 8
        y.Sum().Backward();
        Assert.That(x.Grad!.Item(), Is.EqualTo(8.0));
    }

    [Test]
    public void Non_scalar_backward_needs_a_gradient_of_the_output_shape()
    {
        using var x = Tensor.FromArray([1.0, 2.0]).RequiresGrad_();
        var y = x * 3.0;
        Assert.Throws<ShapeMismatchException>(() => y.Backward());
        y.Backward(Tensor.FromArray([1.0, 10.0]));
        Assert.That(x.Grad!.ToArray<double>(), Is.EqualTo(new[] { 3.0, 30.0 }));
    }

    [Test]
    public void Graph_is_freed_after_backward_unless_retained()
    {
        using var x = Tensor.FromArray([2.0]).RequiresGrad_();
        var y = (x * x).Sum();
        y.Backward(retainGraph: true);
        y.Backward();
        Assert.That(x.Grad!.Item(), Is.EqualTo(8.0));
        var ex = Assert.Throws<InvalidOperationException>(() => y.Backward());
        Assert.That(ex!.Message, Does.Contain("retainGraph"));
    }

    [Test]
    public void No_grad_scope_records_nothing_and_detach_cuts_the_graph()
    {
        using var x = Tensor.FromArray([2.0]).RequiresGrad_();
        using (GradMode.NoGrad())
        {
            var y = x * x;
            Assert.That(y.GradFn, Is.Null);
        }
        var d = (x * x).Detach();
        Assert.That(d.GradFn, Is.Null);
        Assert.That(d.RequiresGrad, Is.False);
        Assert.That(GradMode.IsEnabled, Is.True);
    }

    [Test]
    public void Changing_a_saved_tensor_in_place_is_caught_at_backward()
    {
        using var w = Tensor.FromArray([1.0, 2.0]).RequiresGrad_();
        using var a = Tensor.FromArray([3.0, 4.0]);
        var y = (w * a).Sum();
        a.AddInPlace(Tensor.FromArray([1.0, 1.0]));
        var ex = Assert.Throws<InvalidOperationException>(() => y.Backward());
        Assert.That(ex!.Message, Does.Contain("modified by an in-place operation"));
    }

    [Test]
    public void In_place_change_of_a_parameter_outside_no_grad_is_refused()
    {
        using var w = Tensor.FromArray([1.0]).RequiresGrad_();
        Assert.Throws<InvalidOperationException>(() => w.AddInPlace(Tensor.FromArray([1.0])));
        using (GradMode.NoGrad())
            w.AddInPlace(Tensor.FromArray([1.0]));
        Assert.That(w.Item(), Is.EqualTo(2.0));
    }

    [Test]
    public void Grad_ready_hooks_fire_once_per_backward_after_the_gradient_is_final()
    {
        // w is used by two ops; its hook must see the sum of both contributions, exactly once.
        using var w = Tensor.FromArray([1.0, 1.0]).RequiresGrad_();
        using var x = Tensor.FromArray([2.0, 3.0]);
        var seen = new List<double[]>();
        using var h = w.RegisterGradReadyHook(p => seen.Add(p.Grad!.ToArray<double>()));
        ((w * x).Sum() + (w * w).Sum()).Backward();
        Assert.That(seen, Has.Count.EqualTo(1));
        Assert.That(seen[0], Is.EqualTo(new[] { 4.0, 5.0 }));
    }

    [Test]
    public void Hooks_fire_for_the_last_layer_before_the_first()
    {
        // Backward runs latest-created nodes first, so the parameter used last in forward is ready first:
        // what lets data parallelism start communicating before backward ends.
        using var w1 = Tensor.Randn([4, 4], DType.Float32, new Generator(1)).RequiresGrad_();
        using var w2 = Tensor.Randn([4, 4], DType.Float32, new Generator(2)).RequiresGrad_();
        var order = new List<string>();
        using var h1 = w1.RegisterGradReadyHook(_ => order.Add("w1"));
        using var h2 = w2.RegisterGradReadyHook(_ => order.Add("w2"));
        using var x = Tensor.Randn([3, 4], DType.Float32, new Generator(3));
        using var scope = new TensorScope();
        var y = F.Relu(x.MatMul(w1)).MatMul(w2);
        y.Sum().Backward();
        Assert.That(order, Is.EqualTo(new[] { "w2", "w1" }));
    }

    [Test]
    public void Backward_through_a_step_scope_releases_every_intermediate()
    {
        using var w = Tensor.Randn([8, 8], DType.Float32, new Generator(1)).RequiresGrad_();
        using var x = Tensor.Randn([4, 8], DType.Float32, new Generator(2));
        void Step()
        {
            using var scope = new TensorScope();
            var loss = F.Relu(x.MatMul(w)).Sum();
            loss.Backward();
        }
        Step();
        w.ZeroGrad();
        long before = LiveTensors.Count;
        Step();
        Assert.That(w.Grad, Is.Not.Null);
        w.ZeroGrad();
        Assert.That(LiveTensors.Count, Is.EqualTo(before), "a step inside a TensorScope must not leave tensors alive");
    }
}
