using HpcEngine.Cuda;

namespace HpcEngine.Tests.Cuda;

using Ops = HpcEngine.Ops;

/// <summary>CUDA graphs: a captured training step replays to the eager step's losses and parameters, the allocator
/// makes no device allocation across replays, and a step that reads back to the host is refused with the context
/// left usable. Skipped, with the reason, where no device is found.</summary>
[TestFixture]
[Category("Cuda")]
[NonParallelizable]
public class CudaGraphTests
{
    private static readonly Device Gpu = Device.Cuda(0);
    private static CudaContext Cuda => CudaBackend.Register(0); // opened once per process

    [OneTimeSetUp]
    public void Open()
    {
        var report = CudaDevices.Probe();
        if (!report.HasDevice)
            Assert.Ignore($"no CUDA device: {report.Problem}");
        CudaBackend.Register(0);
    }

    private static (Tensor X, Tensor Y) Batch(int step) =>
        (
            Tensor.Randn([64, 1, 28, 28], DType.Float32, new Generator((ulong)(40 + step))),
            Tensor.FromArray(Enumerable.Range(0, 64).Select(i => (long)((i * 7 + step) % 10)).ToArray())
        );

    /// <summary>One SGD step of <paramref name="name"/> on static GPU inputs, the loss copied into <paramref
    /// name="lossOut"/>.</summary>
    private static Action Step(
        HpcEngine.NN.Module model,
        HpcEngine.Optim.Optimizer opt,
        Tensor x,
        Tensor y,
        Tensor lossOut
    ) =>
        () =>
        {
            using var scope = new TensorScope();
            opt.ZeroGrad();
            var loss = F.CrossEntropy(model.Call(x), y);
            loss.Backward();
            opt.Step();
            lossOut.CopyFrom(loss);
        };

    [TestCase("mlp", "sgd")]
    [TestCase("mlp", "adam")]
    [TestCase("cnn", "sgd")]
    public void A_replayed_training_step_gives_the_eager_steps_losses_and_parameters(string name, string optimizer)
    {
        const int steps = 6;
        (float[] Losses, float[][] Parameters) Run(bool graph)
        {
            using var model = HpcEngine.NN.Models.Create(name, new Generator(3));
            model.To(Gpu);
            // Adam advances its step count and bias corrections on the device, so replays see t = 2, 3, ...
            using HpcEngine.Optim.Optimizer opt =
                optimizer == "sgd"
                    ? new HpcEngine.Optim.Sgd(model.Parameters(), lr: 0.05, momentum: 0.9)
                    : new HpcEngine.Optim.Adam(model.Parameters(), lr: 1e-3);
            using var x = Tensor.Empty([64, 1, 28, 28], DType.Float32, Gpu);
            using var y = Tensor.Empty([64], DType.Int64, Gpu);
            using var lossOut = Tensor.Empty([], DType.Float32, Gpu);
            var step = Step(model, opt, x, y, lossOut);
            var losses = new float[steps];
            CudaGraph? g = null;
            for (int s = 0; s < steps; s++)
            {
                var (bx, by) = Batch(s);
                using (bx)
                using (by)
                using (var gx = bx.To(Gpu))
                using (var gy = by.To(Gpu))
                {
                    x.CopyFrom(gx);
                    y.CopyFrom(gy);
                }
                if (!graph || s == 0)
                    step(); // s = 0 is also the graph's warm-up
                else
                    g!.Replay();
                if (graph && s == 0)
                    g = CudaGraph.Capture(Cuda, step, warmup: 0);
                losses[s] = (float)lossOut.Item();
            }
            g?.Dispose();
            return (losses, model.Parameters().Select(p => p.ToArray<float>()).ToArray());
        }
        var eager = Run(graph: false);
        var replayed = Run(graph: true);
        Assert.That(replayed.Losses, Is.EqualTo(eager.Losses).Within(1e-5));
        for (int i = 0; i < eager.Parameters.Length; i++)
            Assert.That(replayed.Parameters[i], Is.EqualTo(eager.Parameters[i]).Within(1e-5), $"parameter {i}");
    }

    [TestCase("mlp")]
    [TestCase("cnn")]
    public void The_trainer_with_cuda_graph_gives_the_eager_losses(string model)
    {
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        using (train)
        using (test)
        {
            var config = HpcEngine.Training.TrainConfig.For(model) with
            {
                Epochs = 1,
                MaxSteps = 20,
                EvalEverySteps = 20,
                Seed = 9,
                Device = HpcEngine.Device.Cuda(),
            };
            var eager = HpcEngine.Training.Trainer.Run(config, train, test, "embedded");
            var graphed = HpcEngine.Training.Trainer.Run(config with { CudaGraph = true }, train, test, "embedded");
            Assert.That(graphed.StepLosses, Is.EqualTo(eager.StepLosses).Within(1e-4));
            Assert.That(graphed.Curve.Last().Accuracy, Is.EqualTo(eager.Curve.Last().Accuracy).Within(0.005));
        }
    }

    [Test]
    public void Replayed_dropout_draws_the_masks_of_the_eager_steps()
    {
        float[] Run(bool graph)
        {
            var gen = new Generator(11);
            using var x = Tensor.Randn([64, 33], DType.Float32, new Generator(12)).To(Gpu);
            using var w = Tensor.Randn([33], DType.Float32, new Generator(13)).To(Gpu).RequiresGrad_();
            using var opt = new HpcEngine.Optim.Sgd([w], lr: 0.1);
            void Step()
            {
                using var scope = new TensorScope();
                opt.ZeroGrad();
                var loss = Ops.Sum(Ops.Mul(F.Dropout(x, 0.4, generator: gen), w));
                loss.Backward();
                opt.Step();
            }
            Step();
            if (!graph)
                for (int i = 0; i < 4; i++)
                    Step();
            else
            {
                using var g = CudaGraph.Capture(Cuda, Step, warmup: 0);
                for (int i = 0; i < 4; i++)
                    g.Replay();
            }
            return w.ToArray<float>();
        }
        Assert.That(Run(graph: true), Is.EqualTo(Run(graph: false)).Within(1e-6));
    }

    [Test]
    public void Replays_allocate_no_device_memory_and_dispose_returns_the_pool()
    {
        using var model = HpcEngine.NN.Models.Create("mlp", new Generator(4));
        model.To(Gpu);
        using var opt = new HpcEngine.Optim.Sgd(model.Parameters(), lr: 0.01);
        using var x = Tensor.Randn([64, 1, 28, 28], DType.Float32, new Generator(5)).To(Gpu);
        using var y = Tensor.FromArray(Enumerable.Range(0, 64).Select(i => (long)(i % 10)).ToArray()).To(Gpu);
        using var lossOut = Tensor.Empty([], DType.Float32, Gpu);
        var graph = CudaGraph.Capture(Cuda, Step(model, opt, x, y, lossOut), warmup: 2);
        Assert.That(graph.PoolBlocks, Is.GreaterThan(0));
        long before = Cuda.Memory.Stats.DeviceAllocations;
        for (int i = 0; i < 100; i++)
            graph.Replay();
        float last = (float)lossOut.Item();
        Assert.That(Cuda.Memory.Stats.DeviceAllocations, Is.EqualTo(before), "a replay allocates nothing");
        Assert.That(
            float.IsFinite(last) && last < 2.4f,
            $"100 replayed SGD steps on one batch lower the loss (got {last})"
        );
        graph.Dispose();
        Assert.Throws<ObjectDisposedException>(graph.Replay);
        Assert.DoesNotThrow(graph.Dispose, "dispose is idempotent");
    }

    [Test]
    public void A_step_that_reads_back_to_the_host_is_refused_and_the_context_stays_usable()
    {
        using var a = Tensor.Randn([1000], DType.Float32, new Generator(6)).To(Gpu);
        var e = Assert.Throws<InvalidOperationException>(() =>
            CudaGraph.Capture(
                Cuda,
                () =>
                {
                    using var s = Ops.Sum(a);
                    _ = s.Item();
                },
                warmup: 0
            )
        );
        Assert.That(e!.Message, Does.Contain("graph capture").And.Contain("Replay"));
        Assert.That(Cuda.Capturing, Is.False);
        using var s2 = Ops.Sum(a);
        using var want = Ops.Sum(a.To(Device.Cpu));
        Assert.That(s2.Item(), Is.EqualTo(want.Item()).Within(1e-3), "eager work runs after the abandoned capture");
    }
}
