using HpcEngine.Backends;

namespace HpcEngine.Tests.Backends;

/// <summary>The counting decorator the GPU parity run wraps around the CUDA backend: it must forward every call (the
/// results equal the wrapped backend's) and name what it saw.</summary>
[TestFixture]
[NonParallelizable]
public class CountingBackendTests
{
    [TearDown]
    public void Unregister() => DeviceBackends.Unregister(DeviceType.External);

    [Test]
    public void It_forwards_and_counts_the_primitives_an_op_reaches()
    {
        var counting = new CountingBackend(new HostDeviceBackend());
        DeviceBackends.Register(DeviceType.External, counting);
        using var x = Tensor.FromArray(new float[] { 1, -2, 3, -4 }, 2, 2);
        using var d = x.To(Device.External());
        using var r = HpcEngine.Ops.Relu(d);
        using var m = HpcEngine.Ops.MatMul(r, r);
        Assert.That(m.ToArray<float>(), Is.EqualTo(new float[] { 1, 0, 3, 0 }));
        Assert.That(counting.Calls.Keys, Does.Contain("unary").And.Contain("gemm").And.Contain("host_to_device"));
        Assert.That(counting.Calls, Does.Not.ContainKey("softmax"));
    }
}
