using HpcEngine.Backends;
using HpcEngine.Cuda;
using HpcEngine.Tests.Backends;

namespace HpcEngine.Tests.Cuda;

/// <summary><see cref="DeviceSelectTests"/> on cuda:0: comparisons, where, max/argmax, gather/scatter/index-select,
/// Bernoulli/dropout masks bit for bit, layer norm, average pooling and casts against the CPU. Skipped, with the
/// reason, where no device is found.</summary>
[TestFixture]
[Category("Cuda")]
[NonParallelizable]
public class CudaSelectParityTests : DeviceSelectTests
{
    protected override Device Dev => Device.Cuda(0);

    protected override double Tolerance => 1e-4;

    private IBackend? _cuda;
    private CountingBackend? _counting;

    protected override bool Saw(string primitive) => _counting!.Calls.ContainsKey(primitive);

    [OneTimeSetUp]
    public void Open()
    {
        var report = CudaDevices.Probe();
        if (!report.HasDevice)
            Assert.Ignore($"no CUDA device: {report.Problem}");
        CudaBackend.Register(0);
        _cuda = DeviceBackends.For(Device.Cuda(0));
    }

    [SetUp]
    public void Count()
    {
        _counting = new CountingBackend(_cuda!);
        DeviceBackends.Register(DeviceType.Cuda, _counting);
    }

    [TearDown]
    public void Restore()
    {
        if (_cuda != null)
            DeviceBackends.Register(DeviceType.Cuda, _cuda);
    }
}
