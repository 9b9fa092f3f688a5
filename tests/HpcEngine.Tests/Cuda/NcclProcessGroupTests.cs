using HpcEngine.Cuda;
using HpcEngine.Cuda.Interop;
using HpcEngine.Distributed;

namespace HpcEngine.Tests.Cuda;

/// <summary>The NCCL backend behind IProcessGroup on one GPU (world size 1: NCCL refuses two ranks on one device).
/// With one rank every collective has a closed form: reductions return the input (avg too), gathers and all-to-all
/// copy it. Skipped, with the reason, where there is no device or no libnccl.</summary>
[TestFixture]
[Category("Cuda")]
public class NcclProcessGroupTests
{
    /// <summary>The CUDA backend's own context (registered once per process), so cuda tensors and NCCL share its
    /// stream.</summary>
    private static CudaContext Ctx => CudaBackend.Register(0);
    private TcpStore _store = null!;

    [OneTimeSetUp]
    public void Open()
    {
        var report = CudaDevices.Probe();
        if (!report.HasDevice)
            Assert.Ignore($"no CUDA device: {report.Problem}");
        if (CudaLibraries.Find("nccl") == null)
            Assert.Ignore("libnccl.so.2 is not installed on this host");
        _ = Ctx;
        _store = TcpStore.Create("127.0.0.1", 0, isServer: true);
    }

    [OneTimeTearDown]
    public void Close() => _store?.Dispose(); // the backend's context lives on for the process

    private static int _prefix;

    private NcclProcessGroup Group() =>
        NcclProcessGroup.Connect(Ctx, _store, 0, 1, TimeSpan.FromSeconds(60), $"t{Interlocked.Increment(ref _prefix)}");

    [TestCase(DType.Float32)]
    [TestCase(DType.Float64)]
    [TestCase(DType.Int32)]
    [TestCase(DType.Int64)]
    [TestCase(DType.BFloat16)]
    [TestCase(DType.Float16)]
    public void Every_reduction_over_one_rank_returns_the_input(DType dtype)
    {
        using var pg = Group();
        Assert.That(pg.Backend, Is.EqualTo("nccl"));
        foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Avg, ReduceOp.Max, ReduceOp.Min, ReduceOp.Product })
        {
            using var src = Tensor.Arange(1, 1002, 1, DType.Float32);
            using var x = src.To(dtype);
            var want = x.ToArray<double>(); // as rounded to the dtype
            pg.AllReduce(x, new AllReduceOptions { Op = op }).Wait();
            Assert.That(x.ToArray<double>(), Is.EqualTo(want), $"allreduce {op}");
            pg.Reduce(x, new ReduceOptions { Op = op }).Wait();
            Assert.That(x.ToArray<double>(), Is.EqualTo(want), $"reduce {op}");
        }
    }

    [Test]
    public void Gathers_scatters_broadcast_alltoall_and_barrier_have_their_closed_forms()
    {
        using var pg = Group();
        using var x = Tensor.Arange(0, 4099, 1, DType.Float32);
        using var gathered = Tensor.Zeros([4099]);
        pg.AllGather(gathered, x).Wait();
        Assert.That(gathered.ToArray<float>(), Is.EqualTo(x.ToArray<float>()));
        using var scattered = Tensor.Zeros([4099]);
        pg.ReduceScatter(scattered, x).Wait();
        Assert.That(scattered.ToArray<float>(), Is.EqualTo(x.ToArray<float>()));
        using var all = Tensor.Zeros([4099]);
        pg.AllToAll(all, x).Wait();
        Assert.That(all.ToArray<float>(), Is.EqualTo(x.ToArray<float>()));
        pg.Broadcast(x).Wait();
        Assert.That(x.ToArray<float>()[4098], Is.EqualTo(4098f));
        pg.Barrier().Wait();
        using var empty = Tensor.Zeros([0]);
        pg.AllReduce(empty).Wait();
    }

    [Test]
    public void Cuda_tensors_are_reduced_in_place_on_the_device()
    {
        using var pg = Group();
        using var x = Tensor.Arange(0, 1000, 1, DType.Float32).To(Device.Cuda(0));
        pg.AllReduce(x, new AllReduceOptions { Op = ReduceOp.Avg }).Wait();
        Assert.That(x.Device, Is.EqualTo(Device.Cuda(0)));
        Assert.That(x.ToArray<float>()[999], Is.EqualTo(999f));
        using var all = Tensor.Zeros([1000]).To(Device.Cuda(0));
        pg.AllGather(all, x).Wait();
        Assert.That(all.ToArray<float>()[123], Is.EqualTo(123f));
    }

    [Test]
    public void Unsupported_requests_are_clear_errors()
    {
        using var pg = Group();
        using var x = Tensor.Ones([4]);
        Assert.Throws<ArgumentOutOfRangeException>(() => pg.Send(x, 0));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => pg.Broadcast(x, new BroadcastOptions { Root = 3 }));
        Assert.That(ex!.Message, Does.Contain("root 3"));
        using var flags = Tensor.FromArray([true, false]);
        Assert.That(Assert.Throws<NotSupportedException>(() => pg.AllReduce(flags))!.Message, Does.Contain("nccl"));
        Assert.Throws<ShapeMismatchException>(() => pg.AllGather(Tensor.Zeros([3]), x));
    }

    [Test]
    public void A_sub_group_gets_its_own_communicator_and_ops_keep_working()
    {
        using var pg = Group();
        using var sub = pg.NewGroup([0]);
        Assert.That(sub, Is.Not.Null);
        using var x = Tensor.Full([10], 2f);
        sub!.AllReduce(x).Wait();
        pg.AllReduce(x, new AllReduceOptions { Op = ReduceOp.Avg }).Wait();
        Assert.That(x.ToArray<float>(), Is.All.EqualTo(2f));
    }
}
