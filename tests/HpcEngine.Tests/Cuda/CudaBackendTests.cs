using HpcEngine.Cuda;

namespace HpcEngine.Tests.Cuda;

using Ops = HpcEngine.Ops;

/// <summary>cuda tensors against the CPU: the ops with a device path, forward and backward, odd sizes, broadcast and
/// transposed operands, fp32 tolerance (TF32 off). Skipped, with the reason, where no device is found.</summary>
[TestFixture]
[Category("Cuda")]
[NonParallelizable]
public class CudaBackendTests
{
    private static readonly Device Gpu = Device.Cuda(0);

    [OneTimeSetUp]
    public void Open()
    {
        var report = CudaDevices.Probe();
        if (!report.HasDevice)
            Assert.Ignore($"no CUDA device: {report.Problem}");
        CudaBackend.Register(0);
    }

    private static Tensor Randn(int[] shape, ulong seed) => Tensor.Randn(shape, DType.Float32, new Generator(seed));

    private static void Close(Tensor got, Tensor want, double tol = 1e-5, string? what = null)
    {
        Assert.That(got.ShapeArray, Is.EqualTo(want.ShapeArray), what);
        var g = got.ToArray<float>();
        var w = want.ToArray<float>();
        for (int i = 0; i < w.Length; i++)
            Assert.That(g[i], Is.EqualTo(w[i]).Within(tol * Math.Max(1, Math.Abs(w[i]))), $"{what} element {i}");
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(1009)]
    public void Moves_round_trip_and_elementwise_ops_match_the_cpu(int n)
    {
        using var a = Randn([n], 1);
        using var b = Randn([n], 2);
        using var da = a.To(Gpu);
        using var db = b.To(Gpu);
        Assert.That(da.Device, Is.EqualTo(Gpu));
        Assert.That(da.ToArray<float>(), Is.EqualTo(a.ToArray<float>()));
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
            using var got = f(da, db);
            using var want = f(a, b);
            Close(got, want, 1e-6, name);
        }
        foreach (
            var (name, f) in new (string, Func<Tensor, Tensor>)[]
            {
                ("relu", F.Relu),
                ("tanh", F.Tanh),
                ("sigmoid", F.Sigmoid),
                ("neg", Ops.Neg),
            }
        )
        {
            using var got = f(da);
            using var want = f(a);
            Close(got, want, 1e-5, name);
        }
    }

    [Test]
    public void Broadcast_transposed_operands_casts_sums_and_softmax_match_the_cpu()
    {
        using var a = Randn([5, 1, 33], 3);
        using var b = Randn([33, 7], 4);
        using var da = a.To(Gpu);
        using var dbt = b.To(Gpu).Transpose(0, 1);
        using var bt = b.Transpose(0, 1);
        using var sum = Ops.Add(da, dbt);
        using var want = Ops.Add(a, bt);
        Close(sum, want, 1e-6, "broadcast add with a transposed operand");
        using var s = Ops.Sum(sum, [0, 2], keepDim: true);
        using var sw = Ops.Sum(want, [0, 2], keepDim: true);
        Close(s, sw, 1e-5, "sum");
        using var m = Ops.Mean(sum);
        using var mw = Ops.Mean(want);
        Close(m, mw, 1e-5, "mean");
        using var sm = F.LogSoftmax(sum, 2);
        using var smw = F.LogSoftmax(want, 2);
        Close(sm, smw, 1e-5, "log_softmax");
        using var bf = sum.To(DType.BFloat16);
        using var bfw = want.To(DType.BFloat16);
        Assert.That(bf.Device, Is.EqualTo(Gpu));
        Assert.That(bf.ToArray<float>(), Is.EqualTo(bfw.ToArray<float>()), "round to nearest even, as the CPU");
    }

    [TestCase(1, 1, 1)]
    [TestCase(17, 33, 9)]
    [TestCase(128, 257, 64)]
    public void Matmul_of_plain_and_transposed_operands_matches_the_cpu(int m, int k, int n)
    {
        using var a = Randn([m, k], 5);
        using var b = Randn([k, n], 6);
        using var bT = Randn([n, k], 7);
        using var da = a.To(Gpu);
        using var db = b.To(Gpu);
        using var dbT = bT.To(Gpu);
        using var c = da.MatMul(db);
        using var cw = a.MatMul(b);
        Close(c, cw, 1e-4, "a·b");
        using var dbTt = dbT.Transpose(0, 1);
        using var bTt = bT.Transpose(0, 1);
        using var c2 = da.MatMul(dbTt);
        using var c2w = a.MatMul(bTt);
        Close(c2, c2w, 1e-4, "a·bᵀ");
    }

    [Test]
    public void An_mlp_forward_and_backward_on_the_gpu_matches_the_cpu()
    {
        using var x = Randn([64, 784], 8);
        using var w1 = Randn([128, 784], 9);
        using var b1 = Randn([128], 10);
        using var w2 = Randn([10, 128], 11);
        using var b2 = Randn([10], 12);
        var onehot = new float[64 * 10];
        for (int i = 0; i < 64; i++)
            onehot[i * 10 + i % 10] = 1;
        using var target = Tensor.FromArray(onehot, 64, 10);

        float[][] Grads(Device device, out float loss)
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
            using var h = F.Relu(Ops.Linear(xd, ps[0], ps[1]));
            using var y = F.LogSoftmax(Ops.Linear(h, ps[2], ps[3]), 1);
            using var l = Ops.Neg(Ops.Mean(Ops.Mul(y, td)));
            l.Backward();
            loss = (float)l.Item();
            var g = ps.Select(p => p.Grad!.ToArray<float>()).ToArray();
            foreach (var p in ps)
            {
                p.Grad!.Dispose();
                p.Dispose();
            }
            return g;
        }

        var cpu = Grads(Device.Cpu, out float lc);
        var gpu = Grads(Gpu, out float lg);
        Assert.That(lg, Is.EqualTo(lc).Within(1e-4 * Math.Abs(lc)));
        for (int i = 0; i < cpu.Length; i++)
        for (int j = 0; j < cpu[i].Length; j += 7)
            Assert.That(
                gpu[i][j],
                Is.EqualTo(cpu[i][j]).Within(1e-3 * Math.Max(1, Math.Abs(cpu[i][j]))),
                $"parameter {i} element {j}"
            );
    }

    [TestCase("mlp", "sgd")]
    [TestCase("mlp", "adam")]
    [TestCase("cnn", "sgd")]
    public void A_model_trains_on_the_gpu_to_the_cpus_parameters(string name, string optimizer)
    {
        float[][] Train(Device device, out float lastLoss)
        {
            using var model = HpcEngine.NN.Models.Create(name, new Generator(3));
            model.To(device);
            HpcEngine.Optim.Optimizer opt =
                optimizer == "sgd"
                    ? new HpcEngine.Optim.Sgd(model.Parameters(), lr: 0.05, momentum: 0.9)
                    : new HpcEngine.Optim.Adam(model.Parameters(), lr: 1e-3);
            lastLoss = 0;
            for (int step = 0; step < 5; step++)
            {
                using var scope = new TensorScope();
                using var x = Randn([64, 1, 28, 28], (ulong)(20 + step)).To(device);
                using var y = Tensor
                    .FromArray(Enumerable.Range(0, 64).Select(i => (long)((i * 7 + step) % 10)).ToArray())
                    .To(device);
                opt.ZeroGrad();
                var loss = F.CrossEntropy(model.Call(x), y);
                loss.Backward();
                opt.Step();
                lastLoss = (float)loss.Item();
            }
            return model.Parameters().Select(p => p.ToArray<float>()).ToArray();
        }
        var cpu = Train(Device.Cpu, out float lc);
        var gpu = Train(Gpu, out float lg);
        Assert.That(lg, Is.EqualTo(lc).Within(1e-3 * Math.Abs(lc)));
        for (int i = 0; i < cpu.Length; i++)
        for (int j = 0; j < cpu[i].Length; j += 13)
            Assert.That(
                gpu[i][j],
                Is.EqualTo(cpu[i][j]).Within(1e-3 * Math.Max(1, Math.Abs(cpu[i][j]))),
                $"parameter {i} element {j}"
            );
    }

    [Test]
    public void Bf16_autocast_products_on_tensor_cores_match_the_cpus_rounding()
    {
        using var x = Randn([64, 300], 14);
        using var w = Randn([50, 300], 15);
        using var dx = x.To(Gpu);
        using var dw = w.To(Gpu);
        using (HpcEngine.Autograd.Autocast.Bf16())
        {
            using var got = Ops.Linear(dx, dw);
            using var want = Ops.Linear(x, w);
            Close(got, want, 1e-4, "bf16 operands, fp32 accumulation");
        }
    }

    [Test]
    public void What_has_no_kernel_says_so()
    {
        using var ids = Tensor.FromArray([0L, 2]).To(Gpu);
        Assert.Throws<DTypeMismatchException>(() => Ops.Clamp(ids, 0, 1));
        using var i = Tensor.Ones([4], DType.Int64).To(Gpu);
        Assert.Throws<DTypeMismatchException>(() => Ops.Add(i, i));
    }

    [Test]
    public void A_steady_training_loop_allocates_no_device_memory_after_its_first_steps()
    {
        var cuda = CudaBackend.Register(0);
        using var model = HpcEngine.NN.Models.Create("cnn", new Generator(5));
        model.To(Gpu);
        using var opt = new HpcEngine.Optim.Adam(model.Parameters(), lr: 1e-3);
        using var x = Randn([32, 1, 28, 28], 16).To(Gpu);
        using var y = Tensor.FromArray(Enumerable.Range(0, 32).Select(i => (long)(i % 10)).ToArray()).To(Gpu);
        long after = 0;
        for (int step = 0; step < 100; step++)
        {
            using var scope = new TensorScope();
            opt.ZeroGrad();
            var loss = F.CrossEntropy(model.Call(x), y);
            loss.Backward();
            opt.Step();
            if (step == 2)
                after = cuda.Memory.Stats.DeviceAllocations;
        }
        cuda.Synchronize();
        Assert.That(cuda.Memory.Stats.DeviceAllocations, Is.EqualTo(after), "steps 3..100 are served from the cache");
    }

    [TestCase("mlp")]
    [TestCase("cnn")]
    public void The_trainer_on_the_gpu_reaches_the_cpus_accuracy(string model)
    {
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        using (train)
        using (test)
        {
            var config = HpcEngine.Training.TrainConfig.For(model) with
            {
                Epochs = 1,
                MaxSteps = 30,
                EvalEverySteps = 30,
                Seed = 4,
            };
            var cpu = HpcEngine.Training.Trainer.Run(config, train, test, "embedded");
            var gpu = HpcEngine.Training.Trainer.Run(
                config with
                {
                    Device = HpcEngine.Device.Cuda(),
                },
                train,
                test,
                "embedded"
            );
            Assert.That(gpu.Curve.Last().Accuracy, Is.EqualTo(cpu.Curve.Last().Accuracy).Within(0.01));
            Assert.That(gpu.Curve.Last().Accuracy, Is.GreaterThan(0.3), "it learned (chance is 0.1)");
        }
    }
}
