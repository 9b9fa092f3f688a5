using HpcEngine.Compression;
using HpcEngine.Cuda;

namespace HpcEngine.Tests.Cuda;

/// <summary>The kernels against the CPU backend on a real device: odd sizes (0, 1, primes, not multiples of the vector
/// width or block size), fp32 tolerances ~1e-5 relative. Skipped, with the reason, where no device is found.</summary>
[TestFixture]
[Category("Cuda")]
public class CudaKernelParityTests
{
    private CudaContext _cuda = null!;

    [OneTimeSetUp]
    public void Open()
    {
        var report = CudaDevices.Probe();
        if (!report.HasDevice)
            Assert.Ignore($"no CUDA device: {report.Problem}");
        _cuda = CudaContext.Open(0);
    }

    [OneTimeTearDown]
    public void Close() => _cuda?.Dispose();

    private static uint Grid(long n, uint block = 256) => (uint)Math.Clamp((n + block - 1) / block, 1, 4096);

    private static float[] Random(int n, ulong seed) =>
        Tensor.Randn([n], DType.Float32, new Generator(seed)).ToArray<float>();

    private static void AssertClose(float[] got, float[] want, double rel = 1e-5, double abs = 1e-6)
    {
        Assert.That(got, Has.Length.EqualTo(want.Length));
        for (int i = 0; i < want.Length; i++)
            Assert.That(got[i], Is.EqualTo(want[i]).Within(rel * Math.Abs(want[i]) + abs), $"element {i}");
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(7)]
    [TestCase(1_000_003)]
    public void Add_matches_the_cpu_on_aligned_and_misaligned_data(int n)
    {
        using var module = _cuda.LoadKernels("elementwise.cu");
        var a = Random(n + 1, 1);
        var b = Random(n + 1, 2);
        using var da = _cuda.Upload<float>(a);
        using var db = _cuda.Upload<float>(b);
        using var dout = _cuda.Allocate(4L * (n + 1));
        // Offset by one float: the kernel must fall back from 16-byte vector accesses.
        foreach (int offset in new[] { 0, 1 })
        {
            _cuda.Launch(
                module.Function("add_f32"),
                Grid(n),
                256,
                0,
                da.Pointer + (ulong)(4 * offset),
                db.Pointer + (ulong)(4 * offset),
                dout.Pointer,
                (long)n
            );
            var got = _cuda.Download<float>(dout, n);
            AssertClose(got, Enumerable.Range(0, n).Select(i => a[i + offset] + b[i + offset]).ToArray(), 0, 0);
        }
    }

    [TestCase(1, 1)]
    [TestCase(3, 1000)]
    [TestCase(17, 4099)]
    public void Softmax_and_row_sums_match_the_cpu(int rows, int cols)
    {
        using var module = _cuda.LoadKernels("softmax.cu");
        using var reduce = _cuda.LoadKernels("reduce.cu");
        var x = Random(rows * cols, 3);
        using var dx = _cuda.Upload<float>(x);
        using var dy = _cuda.Allocate(4L * rows * cols);
        _cuda.Launch(
            module.Function("softmax_f32"),
            (uint)rows,
            256,
            0,
            dx.Pointer,
            dy.Pointer,
            (long)rows,
            (long)cols
        );
        using var t = Tensor.FromArray(x, rows, cols);
        using var want = F.Softmax(t, -1);
        AssertClose(_cuda.Download<float>(dy, rows * cols), want.ToArray<float>());
        using var sums = _cuda.Allocate(4L * rows);
        _cuda.Launch(
            reduce.Function("sum_rows_f32"),
            (uint)rows,
            256,
            0,
            dx.Pointer,
            sums.Pointer,
            (long)rows,
            (long)cols,
            1.0f
        );
        using var ws = t.Sum([1]);
        AssertClose(_cuda.Download<float>(sums, rows), ws.ToArray<float>(), 1e-4, 1e-4);
    }

    [Test]
    public void Fused_cross_entropy_matches_the_cpu_loss_and_gradient()
    {
        const int rows = 37,
            cols = 10;
        using var module = _cuda.LoadKernels("softmax.cu");
        var x = Random(rows * cols, 4);
        var targets = Enumerable.Range(0, rows).Select(i => (long)(i * 7 % cols)).ToArray();
        using var dx = _cuda.Upload<float>(x);
        using var dt = _cuda.Upload<long>(targets);
        using var loss = _cuda.Allocate(4L * rows);
        using var grad = _cuda.Allocate(4L * rows * cols);
        _cuda.Launch(
            module.Function("cross_entropy_f32"),
            (uint)rows,
            128,
            0,
            dx.Pointer,
            dt.Pointer,
            loss.Pointer,
            grad.Pointer,
            (long)rows,
            (long)cols,
            -100L,
            0.0f,
            (float)rows
        );
        using var logits = Tensor.FromArray(x, rows, cols).RequiresGrad_();
        using var labels = Tensor.FromArray(targets);
        using var l = F.CrossEntropy(logits, labels);
        l.Backward();
        Assert.That(_cuda.Download<float>(loss, rows).Average(), Is.EqualTo(l.Item()).Within(1e-5));
        AssertClose(_cuda.Download<float>(grad, rows * cols), logits.Grad!.ToArray<float>(), 1e-4, 1e-7);
    }

    [Test]
    public void Layer_norm_forward_matches_the_cpu()
    {
        const int rows = 5,
            cols = 333;
        using var module = _cuda.LoadKernels("layernorm.cu");
        var x = Random(rows * cols, 5);
        var w = Random(cols, 6);
        var b = Random(cols, 7);
        using var dx = _cuda.Upload<float>(x);
        using var dw = _cuda.Upload<float>(w);
        using var db = _cuda.Upload<float>(b);
        using var dy = _cuda.Allocate(4L * rows * cols);
        using var mean = _cuda.Allocate(4L * rows);
        using var rstd = _cuda.Allocate(4L * rows);
        _cuda.Launch(
            module.Function("layernorm_f32"),
            rows,
            128,
            0,
            dx.Pointer,
            dw.Pointer,
            db.Pointer,
            dy.Pointer,
            mean.Pointer,
            rstd.Pointer,
            (long)rows,
            (long)cols,
            1e-5f
        );
        using var want = F.LayerNorm(Tensor.FromArray(x, rows, cols), [cols], Tensor.FromArray(w), Tensor.FromArray(b));
        AssertClose(_cuda.Download<float>(dy, rows * cols), want.ToArray<float>(), 1e-4, 1e-5);
    }

    [Test]
    public void Bernoulli_draws_are_the_cpus_for_the_same_seed_and_offset()
    {
        const int n = 10_007;
        using var module = _cuda.LoadKernels("random.cu");
        using var dy = _cuda.Allocate(4L * n);
        var gen = new Generator(42);
        using var keep = Tensor.Bernoulli([n], 0.7, DType.Float32, gen);
        uint threshold = (uint)Math.Ceiling(0.7 * 16777216.0);
        _cuda.Launch(module.Function("bernoulli_f32"), Grid(n), 256, 0, dy.Pointer, (long)n, 42UL, 0UL, threshold, 1f);
        Assert.That(_cuda.Download<float>(dy, n), Is.EqualTo(keep.ToArray<float>()));
    }

    [Test]
    public void Bf16_cast_and_the_sign_and_int8_messages_are_the_cpu_codecs_bytes()
    {
        const int n = 1001;
        using var cast = _cuda.LoadKernels("cast.cu");
        using var compress = _cuda.LoadKernels("compress.cu");
        var x = Random(n, 8);
        using var dx = _cuda.Upload<float>(x);
        using var bf = _cuda.Allocate(2L * n);
        _cuda.Launch(cast.Function("f32_to_bf16"), Grid(n), 256, 0, dx.Pointer, bf.Pointer, (long)n);
        Assert.That(_cuda.Download<ushort>(bf, n), Is.EqualTo(x.Select(BFloat16Bits.FromSingle).ToArray()));
        // The scales as the host codecs compute them, so the messages must agree byte for byte.
        var sign = ((MessageCodec)GradientCodec.Create("sign")).Encode(x);
        using var signScale = _cuda.Upload<float>([BitConverter.ToSingle(sign.Bytes, 0)]);
        using var signMsg = _cuda.Allocate(sign.Bytes.Length);
        _cuda.Launch(
            compress.Function("sign_encode_f32"),
            Grid((n + 7) / 8),
            256,
            0,
            dx.Pointer,
            signScale.Pointer,
            signMsg.Pointer,
            (long)n
        );
        Assert.That(_cuda.Download<byte>(signMsg, sign.Bytes.Length), Is.EqualTo(sign.Bytes));
        var int8 = ((MessageCodec)GradientCodec.Create("int8", seed: 5)).Encode(x);
        using var int8Scale = _cuda.Upload<float>([x.Max(MathF.Abs)]);
        using var int8Msg = _cuda.Allocate(int8.Bytes.Length);
        _cuda.Launch(
            compress.Function("int8_encode_f32"),
            Grid(n),
            256,
            0,
            dx.Pointer,
            int8Scale.Pointer,
            int8Msg.Pointer,
            (long)n,
            5UL,
            0UL
        );
        Assert.That(_cuda.Download<byte>(int8Msg, int8.Bytes.Length), Is.EqualTo(int8.Bytes));
    }

    [Test]
    public void One_adam_step_matches_the_cpu_optimizer()
    {
        const int n = 4099;
        using var module = _cuda.LoadKernels("optim.cu");
        var p = Random(n, 9);
        var g = Random(n, 10);
        using var dp = _cuda.Upload<float>(p);
        using var dg = _cuda.Upload<float>(g);
        using var m = _cuda.Upload<float>(new float[n]);
        using var v = _cuda.Upload<float>(new float[n]);
        using var step = _cuda.Upload<float>(new float[1]);
        using var bias = _cuda.Allocate(8);
        _cuda.Launch(module.Function("adam_advance_f32"), 1, 32, 0, step.Pointer, bias.Pointer, 0.9, 0.999);
        using var lr = _cuda.Upload<float>([1e-3f]);
        _cuda.Launch(
            module.Function("adam_f32"),
            Grid(n),
            256,
            0,
            dp.Pointer,
            dg.Pointer,
            m.Pointer,
            v.Pointer,
            (long)n,
            lr.Pointer,
            0.9f,
            0.999f,
            1e-8f,
            0.01f,
            1,
            bias.Pointer
        );
        Assert.That(_cuda.Download<float>(step, 1)[0], Is.EqualTo(1f));
        Assert.That(_cuda.Download<float>(bias, 2), Is.EqualTo(new[] { (float)(1 - 0.9), (float)(1 - 0.999) }));
        using var param = Tensor.FromArray((float[])p.Clone()).RequiresGrad_();
        param.Grad = Tensor.FromArray(g).DetachFromScope();
        using var adamw = new HpcEngine.Optim.AdamW([param], 1e-3, weightDecay: 0.01);
        adamw.Step();
        AssertClose(_cuda.Download<float>(dp, n), param.ToArray<float>(), 1e-5, 1e-7);
    }

    [Test]
    public void The_caching_allocator_makes_no_device_allocation_in_a_steady_loop()
    {
        long[] pattern = [4 * 784 * 512, 4 * 1024 * 512, 4 * 1024 * 1024, 4 * 10 * 512];
        long first = 0;
        for (int step = 0; step < 100; step++)
        {
            var blocks = pattern.Select(b => _cuda.Memory.Allocate(b, _cuda.Stream)).ToList();
            foreach (var b in blocks)
                _cuda.Memory.Free(b);
            if (step == 0)
                first = _cuda.Memory.Stats.DeviceAllocations;
        }
        Assert.That(_cuda.Memory.Stats.DeviceAllocations, Is.EqualTo(first));
        _cuda.Memory.EmptyCache();
        Assert.That(_cuda.Memory.Stats.ReservedBytes, Is.Zero);
    }

    [Test]
    public void Nccl_with_one_rank_runs_allreduce_and_allgather_on_device_buffers()
    {
        if (HpcEngine.Cuda.Interop.CudaLibraries.Find("nccl") == null)
            Assert.Ignore("libnccl.so.2 is not installed on this host");
        using var store = HpcEngine.Distributed.TcpStore.Create(
            "127.0.0.1",
            0,
            isServer: true,
            new HpcEngine.Distributed.StoreOptions()
        );
        using var comm = NcclCommunicator.Create(_cuda, store, rank: 0, size: 1);
        Assert.That(NcclCommunicator.Version, Is.GreaterThan(20000));
        var x = new float[] { 1, 2, 3, 4.5f };
        using var dx = _cuda.Upload<float>(x);
        comm.AllReduce(dx, x.Length, DType.Float32);
        using var gathered = _cuda.Allocate(4L * x.Length);
        comm.AllGather(gathered, dx, x.Length, DType.Float32);
        comm.Wait(TimeSpan.FromSeconds(30));
        Assert.That(_cuda.Download<float>(dx, x.Length), Is.EqualTo(x), "a sum over one rank is the input");
        Assert.That(_cuda.Download<float>(gathered, x.Length), Is.EqualTo(x));
        Assert.Throws<ArgumentOutOfRangeException>(() => comm.AllReduce(dx, 1000, DType.Float32));
    }
}
