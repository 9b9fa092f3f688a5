using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine.Tests.Backends;

using Ops = HpcEngine.Ops;

/// <summary>Tensors on a device other than the CPU, through the test backend (<see cref="HostDeviceBackend"/>): moves,
/// the ops that route to the device (results stay there, values equal the CPU's), autograd across them, clear errors
/// for what has no device path yet, and memory given back on dispose.</summary>
[TestFixture]
[NonParallelizable] // the backend registry is process-wide
public class DeviceDispatchTests
{
    private HostDeviceBackend _backend = null!;
    private static readonly Device Dev = Device.External(0);

    [SetUp]
    public void Register()
    {
        _backend = new HostDeviceBackend();
        DeviceBackends.Register(DeviceType.External, _backend);
    }

    [TearDown]
    public void Unregister() => DeviceBackends.Unregister(DeviceType.External);

    private static Tensor Randn(int[] shape, ulong seed) => Tensor.Randn(shape, DType.Float32, new Generator(seed));

    [Test]
    public void To_moves_values_both_ways_and_reports_the_device()
    {
        using var x = Randn([3, 5], 1);
        using var d = x.To(Dev);
        Assert.That(d.Device, Is.EqualTo(Dev));
        Assert.That(d.ShapeArray, Is.EqualTo(new[] { 3, 5 }));
        Assert.That(d.ToArray<float>(), Is.EqualTo(x.ToArray<float>()));
        // A transposed (non-contiguous) device view comes back in its own row-major order.
        using var t = d.Transpose(0, 1);
        using var back = t.To(Device.Cpu);
        using var want = x.Transpose(0, 1);
        Assert.That(back.Device, Is.EqualTo(Device.Cpu));
        Assert.That(back.ToArray<float>(), Is.EqualTo(want.ToArray<float>()));
        Assert.That(d.ToString(), Does.Contain("device=external:0"));
        using var one = Tensor.Scalar(2.5).To(Dev);
        Assert.That(one.Item(), Is.EqualTo(2.5));
        Assert.That(Device.External(0).ToString(), Is.EqualTo("external:0"));
    }

    [Test]
    public void Elementwise_ops_with_broadcast_and_strides_run_on_the_device_and_match_the_cpu()
    {
        using var a = Randn([4, 1, 6], 2);
        using var b = Randn([5, 6], 3);
        using var da = a.To(Dev);
        using var db = b.To(Dev);
        using var bt = db.Transpose(0, 1); // strided input
        using var bt2 = bt.Transpose(0, 1);
        foreach (
            var (name, f) in new (string, Func<Tensor, Tensor, Tensor>)[]
            {
                ("add", Ops.Add),
                ("sub", Ops.Sub),
                ("mul", Ops.Mul),
                ("div", Ops.Div),
                ("maximum", Ops.Maximum),
            }
        )
        {
            using var got = f(da, bt2);
            using var want = f(a, b);
            Assert.That(got.Device, Is.EqualTo(Dev), name);
            Assert.That(got.ToArray<float>(), Is.EqualTo(want.ToArray<float>()), name);
        }
        using var s = Ops.MulScalar(da, 3);
        using var sw = Ops.MulScalar(a, 3);
        Assert.That(s.ToArray<float>(), Is.EqualTo(sw.ToArray<float>()));
        using var r = F.Tanh(da);
        using var rw = F.Tanh(a);
        Assert.That(r.ToArray<float>(), Is.EqualTo(rw.ToArray<float>()));
        Assert.That(_backend.Calls["binary"], Is.GreaterThanOrEqualTo(6));
        Assert.That(_backend.Calls["unary"], Is.GreaterThanOrEqualTo(1));
    }

    [Test]
    public void An_mlp_trains_its_gradients_on_the_device_equal_to_the_cpu()
    {
        // y = log_softmax(relu(x·W1ᵀ + b1)·W2ᵀ + b2); loss = −mean(y · onehot): every op of forward and backward has a
        // device path (linear, relu, log-softmax, mul, mean, sum-to for the bias, transposes).
        using var x = Randn([8, 5], 4);
        using var w1 = Randn([7, 5], 5);
        using var b1 = Randn([7], 6);
        using var w2 = Randn([3, 7], 7);
        using var b2 = Randn([3], 8);
        var onehot = new float[8 * 3];
        for (int i = 0; i < 8; i++)
            onehot[i * 3 + i % 3] = 1;
        using var target = Tensor.FromArray(onehot, 8, 3);

        float Loss(Device device, out float[][] grads)
        {
            var ps = new[] { w1, b1, w2, b2 }
                .Select(p =>
                {
                    var q = p.To(device).Detach();
                    q.RequiresGrad = true;
                    return q;
                })
                .ToArray();
            using var xd = x.To(device);
            using var td = target.To(device);
            using var h = Ops.Linear(xd, ps[0], ps[1]);
            using var a = F.Relu(h);
            using var o = Ops.Linear(a, ps[2], ps[3]);
            using var y = F.LogSoftmax(o, 1);
            using var yt = Ops.Mul(y, td);
            using var m = Ops.Mean(yt);
            using var loss = Ops.Neg(m);
            loss.Backward();
            Assert.That(loss.Device, Is.EqualTo(device));
            foreach (var p in ps)
                Assert.That(p.Grad!.Device, Is.EqualTo(device), "gradients stay where their parameter is");
            grads = ps.Select(p => p.Grad!.ToArray<float>()).ToArray();
            float l = (float)loss.Item();
            foreach (var p in ps)
            {
                p.Grad!.Dispose();
                p.Dispose();
            }
            return l;
        }

        float cpu = Loss(Device.Cpu, out var gCpu);
        float dev = Loss(Dev, out var gDev);
        Assert.That(dev, Is.EqualTo(cpu).Within(1e-6));
        for (int i = 0; i < gCpu.Length; i++)
        for (int j = 0; j < gCpu[i].Length; j++)
            Assert.That(gDev[i][j], Is.EqualTo(gCpu[i][j]).Within(1e-6), $"parameter {i} element {j}");
        Assert.That(
            _backend.Calls.Keys,
            Is.SupersetOf(new[] { "gemm", "unary_backward", "softmax", "softmax_backward", "sum" })
        );
    }

    /// <summary>One training run of a model on <paramref name="device"/> (moved with Module.To): a few steps of
    /// forward, cross-entropy over the last dim, backward and the optimizer; returns the last loss and the
    /// parameters.</summary>
    private static (float Loss, float[][] Parameters) TrainSteps(
        string name,
        ulong seed,
        Device device,
        Func<HpcEngine.NN.Module, HpcEngine.Optim.Optimizer> optimizer,
        Func<int, (Tensor X, Tensor Y)> batch,
        int steps,
        Action<HpcEngine.NN.Module>? after = null
    )
    {
        using var model = HpcEngine.NN.Models.Create(name, new Generator(seed));
        model.To(device);
        Assert.That(model.Parameters().All(p => p.Device == device));
        var opt = optimizer(model);
        float loss = 0;
        for (int step = 0; step < steps; step++)
        {
            using var scope = new TensorScope();
            var (xh, yh) = batch(step);
            using var x = xh.To(device);
            using var y = yh.To(device);
            opt.ZeroGrad();
            var logits = model.Call(x);
            var l = F.CrossEntropy(Ops.Reshape(logits, -1, logits.Shape[^1]), y);
            l.Backward();
            opt.Step();
            loss = (float)l.Item();
        }
        after?.Invoke(model);
        return (loss, model.Parameters().Select(p => p.ToArray<float>()).ToArray());
    }

    private static void AssertSameTraining(
        (float Loss, float[][] Parameters) cpu,
        (float Loss, float[][] Parameters) dev,
        double lossTol,
        double paramTol,
        int stride
    )
    {
        Assert.That(dev.Loss, Is.EqualTo(cpu.Loss).Within(lossTol));
        for (int i = 0; i < cpu.Parameters.Length; i++)
        for (int j = 0; j < cpu.Parameters[i].Length; j += stride)
            Assert.That(
                dev.Parameters[i][j],
                Is.EqualTo(cpu.Parameters[i][j]).Within(paramTol),
                $"parameter {i} element {j}"
            );
    }

    private static (Tensor, Tensor) Images(int n, ulong seed, int step) =>
        (
            Randn([n, 1, 28, 28], seed + (ulong)step),
            Tensor.FromArray(Enumerable.Range(0, n).Select(i => (long)((i * 7 + step) % 10)).ToArray())
        );

    [TestCase("sgd")]
    [TestCase("adam")]
    public void The_mlp_model_trains_on_the_device_to_the_cpus_parameters(string optimizer)
    {
        // Module.To moves the parameters in place; cross-entropy and the optimizer step run on the device.
        HpcEngine.Optim.Optimizer Make(HpcEngine.NN.Module m) =>
            optimizer == "sgd"
                ? new HpcEngine.Optim.Sgd(m.Parameters(), lr: 0.05, momentum: 0.9, weightDecay: 1e-4)
                : new HpcEngine.Optim.Adam(m.Parameters(), lr: 1e-3, weightDecay: 1e-4, decoupledWeightDecay: true);
        var cpu = TrainSteps("mlp", 3, Device.Cpu, Make, s => Images(16, 20, s), 3);
        var dev = TrainSteps("mlp", 3, Dev, Make, s => Images(16, 20, s), 3);
        AssertSameTraining(cpu, dev, 1e-5, 1e-5, 13);
        Assert.That(_backend.Calls.Keys, Does.Contain("cross_entropy").And.Contain(optimizer));
    }

    [Test]
    public void The_trainer_runs_on_a_device_with_the_cpus_losses_and_accuracy()
    {
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        using (train)
        using (test)
        {
            var config = HpcEngine.Training.TrainConfig.For("mlp") with
            {
                Epochs = 1,
                MaxSteps = 12,
                EvalEverySteps = 12,
                Seed = 2,
            };
            var cpu = HpcEngine.Training.Trainer.Run(config, train, test, "embedded");
            var dev = HpcEngine.Training.Trainer.Run(
                config with
                {
                    Device = HpcEngine.Device.External(0),
                },
                train,
                test,
                "embedded"
            );
            Assert.That(dev.StepLosses, Has.Count.EqualTo(12));
            for (int i = 0; i < 12; i++)
                Assert.That(dev.StepLosses[i], Is.EqualTo(cpu.StepLosses[i]).Within(1e-4), $"step {i}");
            Assert.That(dev.Curve.Single().Accuracy, Is.EqualTo(cpu.Curve.Single().Accuracy).Within(0.002));
            Assert.That(_backend.Calls["sgd"], Is.GreaterThan(0));
        }
        Assert.Throws<HpcEngine.Training.TrainConfigException>(() =>
            (
                HpcEngine.Training.TrainConfig.For("mlp") with
                {
                    Device = HpcEngine.Device.Cuda(),
                    Strategy = HpcEngine.Parallel.StrategySpec.Parse("ssp:2"),
                }
            ).Validate()
        );
    }

    [TestCase("sgd")]
    [TestCase("adam")]
    public void Training_with_a_captured_step_gives_the_eager_losses(string optimizer)
    {
        // --cuda-graph: static device inputs, the step captured on the first full batch and replayed after it (the
        // test device replays by running the step again, which is what a faithful replay computes); the short last
        // batch of each epoch runs eagerly, so eager and replayed steps interleave on one optimizer state.
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        using (train)
        using (test)
        {
            int batch = train.Count / 3 + 7; // three batches per epoch, the last one short
            var config = HpcEngine.Training.TrainConfig.For("mlp") with
            {
                Epochs = 2,
                BatchSize = batch,
                Seed = 8,
                Optimizer = HpcEngine.Training.TrainConfig.ParseOptimizer(optimizer),
                Lr = optimizer == "sgd" ? 0.05 : 1e-3,
            };
            var cpu = HpcEngine.Training.Trainer.Run(config, train, test, "embedded");
            var graphed = HpcEngine.Training.Trainer.Run(
                config with
                {
                    Device = HpcEngine.Device.External(0),
                    CudaGraph = true,
                },
                train,
                test,
                "embedded"
            );
            Assert.That(graphed.StepLosses, Has.Count.EqualTo(6));
            for (int i = 0; i < 6; i++)
                Assert.That(graphed.StepLosses[i], Is.EqualTo(cpu.StepLosses[i]).Within(1e-4), $"step {i}");
            Assert.That(_backend.Calls["capture_graph"], Is.EqualTo(1), "captured once, replayed after");
            Assert.That(graphed.FinalTestAccuracy, Is.EqualTo(cpu.FinalTestAccuracy).Within(0.002));
        }
        Assert.Throws<HpcEngine.Training.TrainConfigException>(() =>
            (HpcEngine.Training.TrainConfig.For("mlp") with { CudaGraph = true }).Validate()
        );
        Assert.Throws<HpcEngine.Training.TrainConfigException>(() =>
            (
                HpcEngine.Training.TrainConfig.For("mlp") with
                {
                    Device = HpcEngine.Device.Cuda(),
                    CudaGraph = true,
                    ClipNorm = 1,
                }
            ).Validate()
        );
    }

    [TestCase("int8")]
    [TestCase("sign")]
    public void Message_codecs_encode_and_decode_device_gradients_into_the_host_codecs_results(string name)
    {
        // The same messages as the host encode (int8 bit for bit; sign's mean |v| is summed in float32 on the device,
        // float64 on the host), averaged in rank order, with the error-feedback residual kept on the device.
        HpcEngine.Tests.Distributed.Ranks.Run(2, tcp =>
        {
            var pg = new HpcEngine.Distributed.HostStagedProcessGroup(tcp); // not disposed: tcp belongs to Ranks.Run
            var onHost = HpcEngine.Compression.GradientCodec.Create(name, seed: 3);
            var onDevice = HpcEngine.Compression.GradientCodec.Create(name, seed: 3);
            Assert.That(onDevice.TakesDeviceTensors);
            for (int step = 0; step < 3; step++)
            {
                using var g = Randn([1001], (ulong)(40 + 10 * step + pg.Rank));
                using var host = g.Clone();
                using var dev = g.To(Dev);
                onHost
                    .Exchange(
                        host,
                        [
                            [1001],
                        ],
                        pg,
                        key: 0
                    )
                    .Work.Wait();
                var exchange = onDevice.Exchange(
                    dev,
                    [
                        [1001],
                    ],
                    pg,
                    key: 0
                );
                exchange.Work.Wait();
                Assert.That(dev.Device, Is.EqualTo(Dev));
                Assert.That(
                    exchange.EncodedBytes,
                    Is.EqualTo(name == "int8" ? 4 + 1001 : 4 + 126),
                    "the format's bytes"
                );
                if (name == "int8")
                    Assert.That(dev.ToArray<float>(), Is.EqualTo(host.ToArray<float>()), $"step {step}");
                else
                    Assert.That(dev.ToArray<float>(), Is.EqualTo(host.ToArray<float>()).Within(1e-5), $"step {step}");
                Assert.That(onDevice.TotalResidualNorm(), Is.EqualTo(onHost.TotalResidualNorm()).Within(1e-4));
            }
            Assert.That(_backend.Calls.Keys, Does.Contain("encode_message").And.Contain("decode_message"));
        });
    }

    [Test]
    public void Every_collective_takes_device_tensors_over_tcp_through_host_staging()
    {
        HpcEngine.Tests.Distributed.Ranks.Run(2, tcp =>
        {
            var pg = new HpcEngine.Distributed.HostStagedProcessGroup(tcp); // not disposed: tcp belongs to Ranks.Run
            int r = pg.Rank;
            float[] Host(Tensor t) => t.ToArray<float>();
            using var a = Tensor.FromArray([1f + r, 2 + r, 3 + r, 4 + r]).To(Dev);
            pg.AllReduce(a).Wait();
            Assert.That(Host(a), Is.EqualTo(new[] { 3f, 5, 7, 9 }));
            Assert.That(a.Device, Is.EqualTo(Dev));
            using var b = Tensor.FromArray([10f * (r + 1)]).To(Dev);
            pg.Broadcast(b, new HpcEngine.Distributed.BroadcastOptions { Root = 1 }).Wait();
            Assert.That(Host(b), Is.EqualTo(new[] { 20f }));
            using var c = Tensor.FromArray([1f + r]).To(Dev);
            pg.Reduce(c, new HpcEngine.Distributed.ReduceOptions { Root = 0 }).Wait();
            if (r == 0)
                Assert.That(Host(c), Is.EqualTo(new[] { 3f }));
            using var mine = Tensor.FromArray([r * 1f, r + 0.5f]).To(Dev);
            using var all = Tensor.Zeros([4]).To(Dev);
            pg.AllGather(all, mine).Wait();
            Assert.That(Host(all), Is.EqualTo(new[] { 0f, 0.5f, 1, 1.5f }));
            using var whole = Tensor.FromArray([1f, 2, 3, 4]).To(Dev);
            using var part = Tensor.Zeros([2]).To(Dev);
            pg.ReduceScatter(part, whole).Wait();
            Assert.That(Host(part), Is.EqualTo(r == 0 ? new[] { 2f, 4 } : new[] { 6f, 8 }));
            using var send = Tensor.FromArray([r * 10f, r * 10f + 1]).To(Dev);
            using var got = Tensor.Zeros([2]).To(Dev);
            pg.AllToAll(got, send).Wait();
            Assert.That(Host(got), Is.EqualTo(r == 0 ? new[] { 0f, 10 } : new[] { 1f, 11 }));
            using var msg = Tensor.FromArray([42f, 43]).To(Dev);
            using var into = Tensor.Zeros([2]).To(Dev);
            if (r == 0)
                pg.Send(msg, 1).Wait();
            else
            {
                pg.Recv(into, 0).Wait();
                Assert.That(Host(into), Is.EqualTo(new[] { 42f, 43 }));
            }
            pg.Barrier().Wait();
        });
    }

    [Test]
    public void On_a_device_the_trainer_augments_clips_and_resumes_from_a_checkpoint_like_the_cpu()
    {
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        var dir = Path.Combine(Path.GetTempPath(), "hpcengine-device-ckpt-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (train)
            using (test)
            {
                var config = HpcEngine.Training.TrainConfig.For("mlp") with
                {
                    Epochs = 1,
                    MaxSteps = 8,
                    Seed = 3,
                    Augment = true,
                    ClipNorm = 0.5,
                };
                var cpu = HpcEngine.Training.Trainer.Run(config, train, test, "embedded");
                var dev = HpcEngine.Training.Trainer.Run(
                    config with
                    {
                        Device = HpcEngine.Device.External(0),
                    },
                    train,
                    test,
                    "embedded"
                );
                for (int i = 0; i < 8; i++)
                    Assert.That(dev.StepLosses[i], Is.EqualTo(cpu.StepLosses[i]).Within(1e-4), $"step {i}");
                // Stop after 4 steps with a checkpoint of the device parameters, resume to 8: the same last 4 losses.
                HpcEngine.Training.Trainer.Run(
                    config with
                    {
                        Device = HpcEngine.Device.External(0),
                        MaxSteps = 4,
                        CheckpointDir = dir,
                    },
                    train,
                    test,
                    "embedded"
                );
                var resumed = HpcEngine.Training.Trainer.Run(
                    config with
                    {
                        Device = HpcEngine.Device.External(0),
                        CheckpointDir = dir,
                        Resume = true,
                    },
                    train,
                    test,
                    "embedded"
                );
                Assert.That(resumed.StepLosses, Has.Count.EqualTo(4));
                for (int i = 0; i < 4; i++)
                    Assert.That(
                        resumed.StepLosses[i],
                        Is.EqualTo(cpu.StepLosses[4 + i]).Within(1e-4),
                        $"resumed step {i}"
                    );
            }
        }
        finally
        {
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void The_cnn_model_with_conv_batch_norm_and_pooling_trains_on_the_device_to_the_cpus_parameters()
    {
        // SGD, not Adam: Adam's m/√v turns rounding-level gradient differences near zero into lr-sized steps.
        static HpcEngine.Optim.Optimizer Sgd(HpcEngine.NN.Module m) =>
            new HpcEngine.Optim.Sgd(m.Parameters(), lr: 0.05, momentum: 0.9);
        float[] RunningMean(HpcEngine.NN.Module model, Device device, List<float[]> into)
        {
            into.Add(
                model
                    .NamedBuffers()
                    .First(b => b.Name.EndsWith("running_mean", StringComparison.Ordinal))
                    .Buffer.ToArray<float>()
            );
            // Eval mode: batch norm from the running statistics.
            model.Eval();
            using (GradMode.NoGrad())
            {
                using var x = Randn([2, 1, 28, 28], 40).To(device);
                using var o = model.Call(x);
                Assert.That(
                    o.Device,
                    Is.EqualTo(device),
                    "eval forward (batch norm from running statistics) stays on the device"
                );
            }
            return into[^1];
        }
        var stats = new List<float[]>();
        var cpu = TrainSteps(
            "cnn",
            4,
            Device.Cpu,
            Sgd,
            s => Images(6, 30, s),
            2,
            m => RunningMean(m, Device.Cpu, stats)
        );
        var dev = TrainSteps("cnn", 4, Dev, Sgd, s => Images(6, 30, s), 2, m => RunningMean(m, Dev, stats));
        AssertSameTraining(cpu, dev, 1e-4, 2e-4, 7);
        Assert.That(stats[1], Is.EqualTo(stats[0]).Within(1e-5), "running statistics");
        Assert.That(_backend.Calls.Keys, Is.SupersetOf(new[] { "im2col", "col2im", "maxpool", "maxpool_backward" }));
    }

    [TestCase(null, "sync")]
    [TestCase("topk:0.05", "sync")]
    [TestCase("int8", "sync")]
    [TestCase("bf16", "sync")]
    [TestCase("sign", "sync")]
    [TestCase(null, "zero1")]
    [TestCase(null, "localsgd:2")]
    [TestCase("fp16", "diloco:2")]
    public void Data_parallel_training_on_the_device_matches_the_cpus(string? codec, string strategy)
    {
        // Two ranks over loopback TCP, the device tensors staged through the host (as NCCL would take them in place):
        // DDP's buckets live on the device, and the losses match two CPU ranks'. With a codec, each device bucket is
        // compressed from a host copy: the same messages, so the same training.
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        using (train)
        using (test)
        {
            var config = HpcEngine.Training.TrainConfig.For("mlp") with
            {
                Epochs = 1,
                MaxSteps = 6,
                Seed = 5,
                Compress = codec == null ? null : HpcEngine.Compression.CodecSpec.Parse(codec),
                Strategy = HpcEngine.Parallel.StrategySpec.Parse(strategy),
            };
            IReadOnlyList<double> Run(string device)
            {
                IReadOnlyList<double>? losses = null;
                HpcEngine.Tests.Distributed.Ranks.Run(2, pg =>
                {
                    // not disposed: pg belongs to Ranks.Run
                    var staged = new HpcEngine.Distributed.HostStagedProcessGroup(pg);
                    var r = HpcEngine.Training.Trainer.Run(
                        config with
                        {
                            Device = HpcEngine.Device.Parse(device),
                        },
                        train,
                        test,
                        "embedded",
                        null,
                        staged
                    );
                    if (pg.Rank == 0)
                        losses = r.StepLosses;
                });
                return losses!;
            }
            var cpu = Run("cpu");
            var dev = Run("external:0");
            Assert.That(dev, Has.Count.EqualTo(6));
            for (int i = 0; i < 6; i++)
                Assert.That(dev[i], Is.EqualTo(cpu[i]).Within(1e-4), $"step {i}");
        }
    }

    [Test]
    public void Gpt_mini_trains_on_the_device_to_the_cpus_parameters()
    {
        // Embeddings, layer norms, causal attention (batched matmuls, the additive mask, softmax), GELU, the head.
        static HpcEngine.Optim.Optimizer Sgd(HpcEngine.NN.Module m) =>
            new HpcEngine.Optim.Sgd(m.Parameters(), lr: 0.1, momentum: 0.9);
        static (Tensor, Tensor) Tokens(int step)
        {
            var ids = Enumerable.Range(0, 2 * 12).Select(i => (long)((i * 7 + step) % 50)).ToArray();
            return (Tensor.FromArray(ids, 2, 12), Tensor.FromArray(ids.Select(v => (v + 1) % 50).ToArray()));
        }
        var cpu = TrainSteps("gpt-mini", 6, Device.Cpu, Sgd, Tokens, 2);
        var dev = TrainSteps("gpt-mini", 6, Dev, Sgd, Tokens, 2);
        AssertSameTraining(cpu, dev, 1e-4, 1e-4, 11);
        Assert.That(
            _backend.Calls.Keys,
            Is.SupersetOf(new[] { "embedding", "embedding_backward", "softmax_backward" })
        );
    }

    [Test]
    public void Scalar_operands_and_fills_need_no_host_transfer()
    {
        // A host-to-device copy synchronises the stream and cannot be captured in a CUDA graph: scalars are filled in
        // on the device by a kernel instead.
        using var x = Randn([3, 4], 14);
        using var d = x.To(Dev);
        _backend.Calls.Remove("host_to_device");
        using var two = Tensor.Scalar(2);
        using (var scope = new TensorScope())
        {
            Ops.AddScalar(d, 1);
            Ops.MulScalar(d, 0.5);
            Ops.Mul(d, two);
            Ops.GtScalar(d, 0);
            Ops.MaskedFill(d, Ops.GtScalar(d, 0), -1);
            Ops.Clamp(d, 0, 1);
            d.Fill(3);
            Tensor.Empty([5], DType.Int64, Dev).Fill(7);
        }
        Assert.That(_backend.Calls.ContainsKey("host_to_device"), Is.False, "a scalar crossed from the host");
        Assert.That(d.ToArray<float>(), Is.All.EqualTo(3f));
    }

    [TestCase("sgd")]
    [TestCase("adamw")]
    public void A_changing_learning_rate_reaches_the_device_optimizer(string optimizer)
    {
        // The device kernels read the rate from device memory that the Lr setter writes (graph replays follow
        // schedules); eagerly, every step must see the rate set just before it.
        float[][] Train(Device device)
        {
            using var model = HpcEngine.NN.Models.Create("mlp", new Generator(6));
            model.To(device);
            using HpcEngine.Optim.Optimizer opt =
                optimizer == "sgd"
                    ? new HpcEngine.Optim.Sgd(model.Parameters(), lr: 0.1, momentum: 0.9)
                    : new HpcEngine.Optim.Adam(
                        model.Parameters(),
                        lr: 1e-3,
                        weightDecay: 0.1,
                        decoupledWeightDecay: true
                    );
            foreach (double lr in new[] { 0.1, 0.01, 0.3, 0.0 })
            {
                using var scope = new TensorScope();
                var (x, y) = Images(8, 30, (int)(lr * 100));
                opt.Lr = optimizer == "sgd" ? lr : lr / 100;
                opt.ZeroGrad();
                var loss = F.CrossEntropy(model.Call(x.To(device)), y.To(device));
                loss.Backward();
                opt.Step();
            }
            return model.Parameters().Select(p => p.ToArray<float>()).ToArray();
        }
        var cpu = Train(Device.Cpu);
        var dev = Train(Dev);
        for (int i = 0; i < cpu.Length; i++)
            Assert.That(dev[i], Is.EqualTo(cpu[i]).Within(1e-5), $"parameter {i}");
    }

    [Test]
    public void Gradients_flow_back_across_a_move()
    {
        using var x = Randn([4], 9);
        x.RequiresGrad = true;
        using var d = x.To(Dev);
        using var sq = Ops.Mul(d, d);
        using var s = Ops.Sum(sq);
        s.Backward();
        Assert.That(x.Grad!.Device, Is.EqualTo(Device.Cpu));
        Assert.That(x.Grad.ToArray<float>(), Is.EqualTo(x.ToArray<float>().Select(v => 2 * v).ToArray()).Within(1e-6));
    }

    [Test]
    public void Casts_sums_and_softmax_over_any_dim_stay_on_the_device()
    {
        using var x = Randn([3, 4, 5], 10);
        using var d = x.To(Dev);
        using var dd = d.To(DType.Float64);
        Assert.That(dd.Device, Is.EqualTo(Dev));
        Assert.That(dd.ToArray<double>(), Is.EqualTo(x.ToArray<float>().Select(v => (double)v).ToArray()));
        using var s = Ops.Sum(d, [0, 2], keepDim: true);
        using var sw = Ops.Sum(x, [0, 2], keepDim: true);
        Assert.That(s.ShapeArray, Is.EqualTo(sw.ShapeArray));
        Assert.That(s.ToArray<float>(), Is.EqualTo(sw.ToArray<float>()).Within(1e-5));
        using var sm = F.Softmax(d, 1);
        using var smw = F.Softmax(x, 1);
        Assert.That(sm.Device, Is.EqualTo(Dev));
        Assert.That(sm.ToArray<float>(), Is.EqualTo(smw.ToArray<float>()).Within(1e-7));
        using var z = Tensor.ZerosLike(d);
        using var o = Tensor.OnesLike(d);
        Assert.That(z.Device, Is.EqualTo(Dev));
        Assert.That(o.ToArray<float>(), Is.All.EqualTo(1f));
    }

    [Test]
    public void Mixed_devices_device_memory_in_a_cpu_kernel_and_a_missing_backend_are_clear_errors()
    {
        using var x = Randn([2, 3], 11);
        using var d = x.To(Dev);
        var e2 = Assert.Throws<DeviceMismatchException>(() => Ops.Add(d, x));
        Assert.That(e2!.Message, Does.Contain("different devices"));
        // A CPU kernel handed device memory fails instead of reading it.
        var e3 = Assert.Throws<DeviceMismatchException>(() => _ = d.AsReadOnlySpan<float>().Length);
        Assert.That(e3!.Message, Does.Contain("not host memory").And.Contain("external:0").And.Contain("Device.Cpu"));
        DeviceBackends.Unregister(DeviceType.External);
        var e4 = Assert.Throws<DeviceMismatchException>(() => x.To(Device.Cuda(0)));
        Assert.That(e4!.Message, Does.Contain("CudaBackend.Register()"));
    }

    [Test]
    public void Device_memory_is_given_back_when_the_last_view_is_disposed()
    {
        long before = _backend.LiveBlocks;
        using (var scope = new TensorScope())
        {
            using var x = Randn([64, 64], 12);
            var d = x.To(Dev);
            var v = d.Transpose(0, 1);
            var y = Ops.Add(d, v);
            Assert.That(_backend.LiveBlocks, Is.GreaterThan(before));
        }
        Assert.That(_backend.LiveBlocks, Is.EqualTo(before));
    }
}
