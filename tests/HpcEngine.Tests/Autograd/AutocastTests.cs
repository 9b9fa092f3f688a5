using HpcEngine.Autograd;
using HpcEngine.Backends;
using HpcEngine.Tests.Backends;

namespace HpcEngine.Tests.Autograd;

using Ops = HpcEngine.Ops;

/// <summary>bf16 mixed precision: inside the scope, matrix products take bf16-rounded operands and accumulate in fp32;
/// everything else, and the parameters, stay fp32; the CPU and a device compute the same; training still
/// converges.</summary>
[TestFixture]
[NonParallelizable]
public class AutocastTests
{
    private static Tensor Randn(int[] shape, ulong seed) => Tensor.Randn(shape, DType.Float32, new Generator(seed));

    [Test]
    public void Products_take_bf16_operands_and_return_fp32()
    {
        using var x = Randn([17, 33], 1);
        using var w = Randn([9, 33], 2);
        using var fp32 = Ops.Linear(x, w);
        Tensor amp;
        using (Autocast.Bf16())
            amp = Ops.Linear(x, w);
        using (amp)
        {
            Assert.That(amp.DType, Is.EqualTo(DType.Float32));
            using var x16 = Ops.RoundToBf16(x);
            using var w16 = Ops.RoundToBf16(w);
            using var want = Ops.Linear(x16, w16);
            Assert.That(
                amp.ToArray<float>(),
                Is.EqualTo(want.ToArray<float>()),
                "the product of the rounded operands, in fp32"
            );
            Assert.That(amp.ToArray<float>(), Is.Not.EqualTo(fp32.ToArray<float>()), "and not the fp32 product");
        }
        Assert.That(Autocast.IsBf16, Is.False, "the scope ends with its handle");
        // The rounding is to nearest even: 1 + 2^-8 (a tie) rounds down to 1, 1 + 3·2^-8 up to 1 + 2^-6.
        using var t = Tensor.FromArray([1f + 1f / 256, 1f + 3f / 256]);
        using var r = Ops.RoundToBf16(t);
        Assert.That(r.ToArray<float>(), Is.EqualTo(new[] { 1f, 1f + 1f / 64 }));
    }

    [Test]
    public void Gradients_reach_fp32_master_weights_and_match_on_a_device()
    {
        var backend = new HostDeviceBackend();
        DeviceBackends.Register(DeviceType.External, backend);
        try
        {
            float[] Grad(Device device)
            {
                using var w0 = Randn([5, 7], 3);
                var w = w0.To(device).Detach();
                w.RequiresGrad = true;
                using var x = Randn([4, 7], 4).To(device);
                using (Autocast.Bf16())
                {
                    using var y = Ops.Linear(x, w);
                    using var s = Ops.Sum(Ops.Mul(y, y));
                    s.Backward();
                }
                Assert.That(w.Grad!.DType, Is.EqualTo(DType.Float32));
                var g = w.Grad.ToArray<float>();
                w.Grad.Dispose();
                w.Dispose();
                return g;
            }
            Assert.That(Grad(Device.External(0)), Is.EqualTo(Grad(Device.Cpu)).Within(1e-6));
            Assert.That(backend.Calls.ContainsKey("gemm_bf16"), Is.True, "the device was asked for bf16 operands");
        }
        finally
        {
            DeviceBackends.Unregister(DeviceType.External);
        }
    }

    [Test]
    public void Training_with_bf16_products_stays_close_to_fp32()
    {
        var (train, test) = HpcEngine.Datasets.DataSources.LoadEmbedded();
        using (train)
        using (test)
        {
            var config = HpcEngine.Training.TrainConfig.For("mlp") with { Epochs = 1, MaxSteps = 40, Seed = 7 };
            var fp32 = HpcEngine.Training.Trainer.Run(config, train, test, "embedded");
            var bf16 = HpcEngine.Training.Trainer.Run(
                config with
                {
                    Amp = HpcEngine.Training.MixedPrecision.Bf16,
                },
                train,
                test,
                "embedded"
            );
            Assert.That(bf16.StepLosses[^1], Is.EqualTo(fp32.StepLosses[^1]).Within(0.05));
            Assert.That(bf16.StepLosses[^1], Is.LessThan(bf16.StepLosses[0]), "it learns");
            Assert.That(
                bf16.StepLosses.Zip(fp32.StepLosses).Any(p => p.First != p.Second),
                Is.True,
                "bf16 products do change the numbers"
            );
        }
        Assert.Throws<HpcEngine.Training.TrainConfigException>(() => HpcEngine.Training.TrainConfig.ParseAmp("fp8"));
        Assert.Throws<HpcEngine.Training.TrainConfigException>(() =>
            (HpcEngine.Training.TrainConfig.For("mlp") with { Amp = (HpcEngine.Training.MixedPrecision)7 }).Validate()
        );
    }
}
