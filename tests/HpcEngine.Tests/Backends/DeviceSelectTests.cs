using HpcEngine.Backends;

namespace HpcEngine.Tests.Backends;

using Ops = HpcEngine.Ops;

/// <summary>The device paths of comparisons, where, max/min/argmax, gather/scatter/index-select, Bernoulli and dropout,
/// layer norm and average pooling, and integer casts: each runs on the device, keeps its result there, and gives the
/// CPU's values and gradients. Run on the test backend here (which also says the op reached it) and on cuda:0 by
/// <see cref="HpcEngine.Tests.Cuda.CudaSelectParityTests"/> where a GPU is found.</summary>
public abstract partial class DeviceSelectTests
{
    protected abstract Device Dev { get; }

    /// <summary>Tolerance of values and gradients (the GPU sums in another order).</summary>
    protected abstract double Tolerance { get; }

    /// <summary>Whether the backend saw a call of <paramref name="primitive"/> (true where it cannot tell).</summary>
    protected abstract bool Saw(string primitive);

    private static Tensor Randn(int[] shape, ulong seed) => Tensor.Randn(shape, DType.Float32, new Generator(seed));

    /// <summary>Runs <paramref name="f"/> on CPU inputs and on device copies; asserts the result stays on the device
    /// and equals the CPU's, and (for float inputs) that the gradients of sum(result · weights) agree.</summary>
    protected void Same(string primitive, Func<Tensor[], Tensor> f, params Tensor[] inputs) =>
        SameWithin(Tolerance, primitive, f, inputs);

    /// <summary><see cref="Same"/> with a tolerance of its own (bf16 results round to 8 bits of mantissa).</summary>
    protected void SameWithin(double tolerance, string primitive, Func<Tensor[], Tensor> f, params Tensor[] inputs)
    {
        var cpu = inputs.Select(t => t.DType == DType.Float32 ? t.Detach().RequiresGrad_() : t.Alias()).ToArray();
        var dev = inputs
            .Select(t =>
            {
                var d = t.To(Dev);
                return t.DType == DType.Float32 ? d.RequiresGrad_() : d;
            })
            .ToArray();
        using var want = f(cpu);
        using var got = f(dev);
        Assert.That(got.Device, Is.EqualTo(Dev), primitive);
        Assert.That(got.DType, Is.EqualTo(want.DType), primitive);
        Assert.That(got.ShapeArray, Is.EqualTo(want.ShapeArray), primitive);
        Assert.That(got.ToArray<double>(), Is.EqualTo(want.ToArray<double>()).Within(tolerance), primitive);
        Assert.That(Saw(primitive), primitive);
        if (want.NeedsGrad)
        {
            using var w = Tensor.Rand(want.ShapeArray, DType.Float32, new Generator(99));
            using var wd = w.To(Dev);
            using (var lc = Ops.Sum(Ops.Mul(want, w)))
                lc.Backward();
            using (var ld = Ops.Sum(Ops.Mul(got, wd)))
                ld.Backward();
            for (int i = 0; i < inputs.Length; i++)
            {
                if (cpu[i].Grad == null)
                    continue;
                Assert.That(dev[i].Grad, Is.Not.Null, $"{primitive}: input {i} got no gradient on the device");
                Assert.That(dev[i].Grad!.Device, Is.EqualTo(Dev));
                Assert.That(
                    dev[i].Grad!.ToArray<float>(),
                    Is.EqualTo(cpu[i].Grad!.ToArray<float>()).Within(tolerance),
                    $"{primitive}: gradient of input {i}"
                );
            }
        }
        foreach (var t in cpu.Concat(dev))
            t.Dispose();
    }

    [Test]
    public void Comparisons_broadcast_and_take_cpu_scalars()
    {
        using var a = Tensor.FromArray([1f, 2, 3, float.NaN, 5, 6], 2, 3);
        using var b = Tensor.FromArray([2f, 2, 2], 1, 3);
        foreach (
            var f in new Func<Tensor, Tensor, Tensor>[]
            {
                Ops.Eq,
                Ops.Ne,
                Ops.Lt,
                Ops.Le,
                Ops.Gt,
                Ops.Ge,
                Ops.LogicalAnd,
                Ops.LogicalOr,
                Ops.LogicalXor,
            }
        )
            Same("compare", t => f(t[0], t[1]), a, b);
        Same("compare", t => Ops.GtScalar(t[0], 2.5), a);
        using var ids = Tensor.FromArray([3L, 1, 4, 1, 5]);
        using var target = Tensor.FromArray([3L, 0, 4, 0, 0]);
        Same("compare", t => Ops.Eq(t[0], t[1]), ids, target);
        using var mask = Ops.GtScalar(a, 2);
        Same("compare", t => Ops.LogicalNot(t[0]), mask);
    }

    [Test]
    public void Where_and_masked_fill_with_their_gradients()
    {
        using var x = Randn([3, 4], 1);
        using var y = Randn([4], 2);
        using var cond = Ops.GtScalar(x, 0);
        Same("where", t => Ops.Where(t[2], t[0], t[1]), x, y, cond);
        Same("where", t => Ops.MaskedFill(t[0], t[1], -1e9), x, cond);
    }

    [Test]
    public void Max_min_and_arg_reductions_over_any_dim_with_gradients()
    {
        using var x = Tensor.FromArray([3f, 1, 3, -2, 7, 7, 0, 5, 1, 2, 2, 9], 2, 2, 3); // ties: the first index wins
        Same("extreme", t => Ops.Max(t[0], 2).Values, x);
        Same("extreme", t => Ops.Max(t[0], 2, keepDim: true).Indices, x);
        Same("extreme", t => Ops.Min(t[0], 0).Values, x);
        Same("extreme", t => Ops.Min(t[0], 1).Indices, x);
        Same("extreme", t => Ops.ArgMax(t[0], 1), x);
        Same("extreme", t => Ops.ArgMin(t[0], -1), x);
        Same("extreme", t => Ops.Max(t[0]), x); // the whole tensor: the gradient splits over the two 9s? one 9 here
        using var ties = Tensor.FromArray([1f, 4, 4, 2]);
        Same("extreme", t => Ops.Max(t[0]), ties);
    }

    [Test]
    public void Gather_scatter_add_and_index_select_with_gradients_and_range_errors()
    {
        using var x = Randn([3, 5], 3);
        using var index = Tensor.FromArray([4L, 0, 0, 2, 1, 1], 3, 2);
        Same("gather", t => Ops.Gather(t[0], 1, t[1]), x, index);
        using var rows = Tensor.FromArray([2L, 0, 2, 1]);
        Same("gather", t => Ops.IndexSelect(t[0], 0, t[1]), x, rows);
        Same("gather", t => Ops.IndexSelect(t[0], 1, t[1]), x, rows);
        using var src = Randn([3, 2], 4);
        Same("scatter_add", t => Ops.ScatterAdd(t[0], 1, t[1], t[2]), x, index, src);
        using var dx = x.To(Dev);
        using var bad = Tensor.FromArray([0L, 5], 1, 2);
        var e = Assert.Throws<IndexOutOfRangeException>(() => Ops.Gather(dx, 1, bad));
        Assert.That(e!.Message, Does.Contain("gather").And.Contain("index 5").And.Contain("size 5"));
        using var neg = Tensor.FromArray([-1L]);
        Assert.Throws<IndexOutOfRangeException>(() => Ops.IndexSelect(dx, 0, neg));
    }

    [Test]
    public void Bernoulli_and_dropout_draw_the_cpus_numbers_for_the_same_generator_state()
    {
        foreach (double p in new[] { 0.1, 0.5, 0.9 }) // 0.9 is not a float: the threshold must compare as the CPU does
        {
            using var cpu = Tensor.Bernoulli([1001], p, DType.Float32, new Generator(7));
            using var dev = Tensor.Bernoulli([1001], p, DType.Float32, new Generator(7), Dev);
            Assert.That(dev.Device, Is.EqualTo(Dev));
            Assert.That(dev.ToArray<float>(), Is.EqualTo(cpu.ToArray<float>()), $"p = {p}");
        }
        using var x = Randn([4, 33], 5);
        var g1 = new Generator(11);
        var g2 = new Generator(11);
        Same("bernoulli", t => F.Dropout(t[0], 0.3, generator: t[0].IsCpu ? g1 : g2), x);
        Assert.That(g2.Offset, Is.EqualTo(g1.Offset), "both draws reserve the same stretch of the stream");
    }

    [Test]
    public void Layer_norm_is_one_fused_kernel_each_way_with_and_without_affine_parameters()
    {
        using var x = Randn([3, 2, 7], 6);
        using var w = Randn([2, 7], 7);
        using var b = Randn([2, 7], 8);
        Same("layer_norm", t => F.LayerNorm(t[0], [2, 7], t[1], t[2]), x, w, b);
        Same("layer_norm", t => F.LayerNorm(t[0], [7], null, t[1]), x, Randn([7], 9));
        Same("layer_norm", t => F.LayerNorm(t[0], [7]), x);
        Assert.That(Saw("layer_norm_backward"));
    }

    [Test]
    public void Average_pooling_with_padding_rules_and_its_gradient()
    {
        using var x = Randn([2, 3, 7, 6], 10);
        Same("avgpool", t => F.AvgPool2d(t[0], 3, 2, 1), x);
        Same("avgpool", t => F.AvgPool2d(t[0], 3, 2, 1, countIncludePad: false), x);
        Same("avgpool", t => F.AvgPool2d(t[0], 2), x);
        Assert.That(Saw("avgpool_backward"));
    }

    [Test]
    public void Variance_norms_and_logsumexp_are_composed_on_the_device_with_gradients()
    {
        using var x = Randn([3, 4, 5], 12);
        Same("sum", t => Ops.Var(t[0], [1]), x);
        Same("sum", t => Ops.Std(t[0], [0, 2], keepDim: true), x);
        Same("sum", t => Ops.Norm(t[0]), x);
        Same("sum", t => Ops.Norm(t[0], 1, [2]), x);
        Same("extreme", t => Ops.Norm(t[0], double.PositiveInfinity, [0]), x);
        Same("extreme", t => Ops.LogSumExp(t[0], [2]), x);
        Same("extreme", t => Ops.LogSumExp(t[0], [0, 1], keepDim: true), x);
        using var inf = Tensor.FromArray(
            [float.NegativeInfinity, float.NegativeInfinity, 1, float.PositiveInfinity],
            2,
            2
        );
        Same("extreme", t => Ops.LogSumExp(t[0], [1]), inf);
    }

    [Test]
    public void Copies_across_devices_and_in_place_fills()
    {
        using var x = Randn([2, 3], 13);
        using var d = Tensor.Zeros([2, 3]).To(Dev);
        d.CopyFrom(x);
        Assert.That(d.Device, Is.EqualTo(Dev));
        Assert.That(d.ToArray<float>(), Is.EqualTo(x.ToArray<float>()));
        using var back = Tensor.Zeros([2, 3], DType.Float64);
        back.CopyFrom(d);
        Assert.That(back.ToArray<double>(), Is.EqualTo(x.ToArray<float>().Select(v => (double)v).ToArray()));
        d.Fill(2.5);
        Assert.That(d.ToArray<float>(), Is.All.EqualTo(2.5f));
        using var col = d.Narrow(1, 1, 1);
        col.Fill(-1); // a strided view
        Assert.That(d.ToArray<float>(), Is.EqualTo(new[] { 2.5f, -1, 2.5f, 2.5f, -1, 2.5f }));
    }

    [Test]
    public void Every_unary_op_clamp_and_pow_max_min_with_broadcast_and_cpu_scalars()
    {
        using var x = Randn([3, 7], 14);
        using var ax = Ops.Abs(x);
        using var pos = Ops.AddScalar(ax, 0.1);
        foreach (
            var (name, f) in new (string, Func<Tensor, Tensor>)[]
            {
                ("neg", Ops.Neg),
                ("abs", Ops.Abs),
                ("exp", Ops.Exp),
                ("tanh", Ops.Tanh),
                ("sigmoid", Ops.Sigmoid),
                ("relu", Ops.Relu),
                ("leaky_relu", t => Ops.LeakyRelu(t, 0.1)),
                ("gelu", t => Ops.Gelu(t)),
                ("gelu_tanh", t => Ops.Gelu(t, "tanh")),
                ("silu", Ops.Silu),
                ("pow3", t => Ops.Pow(t, 3)),
                ("sign", Ops.Sign),
                ("sin", Ops.Sin),
                ("cos", Ops.Cos),
                ("atan", Ops.Atan),
                ("sinh", Ops.Sinh),
                ("cosh", Ops.Cosh),
                ("erf", Ops.Erf),
                ("expm1", Ops.Expm1),
                ("floor", Ops.Floor),
                ("ceil", Ops.Ceil),
                ("round", Ops.Round),
                ("trunc", Ops.Trunc),
                ("frac", Ops.Frac),
            }
        )
            Same("unary", t => f(t[0]), x);
        foreach (
            var (name, f) in new (string, Func<Tensor, Tensor>)[]
            {
                ("log", Ops.Log),
                ("log1p", Ops.Log1p),
                ("sqrt", Ops.Sqrt),
                ("rsqrt", Ops.Rsqrt),
                ("reciprocal", Ops.Reciprocal),
                ("log2", Ops.Log2),
                ("log10", Ops.Log10),
                ("tan", t => Ops.Tan(Ops.MulScalar(t, 0.3))),
                ("asin", t => Ops.Asin(Ops.MulScalar(t, 0.2))),
                ("acos", t => Ops.Acos(Ops.MulScalar(t, 0.2))),
            }
        )
            Same("unary", t => f(t[0]), pos);
        Same("clamp", t => Ops.Clamp(t[0], -0.5, 0.5), x);
        Same("clamp", t => Ops.Clamp(t[0], max: 0.2), x);
        using var y = Randn([7], 15);
        Same("binary", t => Ops.Pow(t[0], t[1]), pos, y);
        Same("binary", t => Ops.Maximum(t[0], t[1]), x, y);
        Same("binary", t => Ops.Minimum(t[1], t[0]), x, y);
        using var two = Tensor.Scalar(2.0); // a 0-dim CPU operand moves to the device
        Same("binary", t => Ops.Mul(t[0], two), x);
        Same("copy", t => Ops.Cat([t[0], t[1]], 1), x, Randn([3, 2], 16));
    }

    /// <summary>Row widths that take the GPU's register-cached row path (cols % 4 == 0, up to 4096) and the ones
    /// that do not (odd, or wider).</summary>
    [TestCase(8)]
    [TestCase(4096)]
    [TestCase(4100)]
    [TestCase(37)]
    public void Softmax_log_softmax_and_layer_norm_rows_of_every_width(int cols)
    {
        using var x = Randn([3, cols], 17);
        using var w = Randn([cols], 18);
        Same("softmax", t => F.Softmax(t[0], 1), x);
        Same("softmax", t => F.LogSoftmax(t[0], 1), x);
        Same("layer_norm", t => F.LayerNorm(t[0], [cols], t[1], t[1]), x, w);
        Same("layer_norm", t => F.LayerNorm(t[0], [cols], t[1]), x, w);
    }

    [Test]
    public void Batched_matmul_is_one_strided_batched_gemm_with_broadcast_and_permuted_operands()
    {
        using var a = Randn([2, 3, 4, 5], 19);
        using var b = Randn([2, 3, 5, 6], 20);
        using var w = Randn([5, 6], 21);
        // [B, T, H, D]: heads permuted to [B, H, T, D] do not flatten to one stride
        using var heads = Randn([2, 4, 3, 5], 22);
        Same("gemm_batched", t => Ops.MatMul(t[0], t[1]), a, b);
        Same("gemm_batched", t => Ops.MatMul(t[0], t[1]), a, w);
        Same("gemm_batched", t => Ops.MatMul(t[1], Ops.Transpose(t[0], -1, -2)), w, b);
        Same(
            "gemm_batched",
            t =>
            {
                using var q = Ops.Permute(t[0], 0, 2, 1, 3);
                using var kt = Ops.Transpose(q, -1, -2);
                return Ops.MatMul(q, kt);
            },
            heads
        );
        using var one = Randn([1, 3, 4, 5], 23);
        Same("gemm_batched", t => Ops.MatMul(t[0], t[1]), one, b); // broadcast over the leading dim only
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Batch_norm_is_fused_each_way_and_updates_the_running_statistics(bool training)
    {
        foreach (var shape in new[] { new[] { 4, 3, 5, 7 }, new[] { 6, 3 } })
        {
            using var x = Randn(shape, 24);
            using var w = Randn([3], 25);
            using var b = Randn([3], 26);
            using var rmCpu = Randn([3], 27);
            using var rvCpu = Ops.AddScalar(Ops.Abs(rmCpu), 0.5);
            using var rmDev = rmCpu.To(Dev);
            using var rvDev = rvCpu.To(Dev);
            Same(
                "batch_norm",
                t =>
                    t[0].IsCpu
                        ? F.BatchNorm(t[0], rmCpu, rvCpu, t[1], t[2], training)
                        : F.BatchNorm(t[0], rmDev, rvDev, t[1], t[2], training),
                x,
                w,
                b
            );
            Assert.That(rmDev.ToArray<float>(), Is.EqualTo(rmCpu.ToArray<float>()).Within(Tolerance), "running mean");
            Assert.That(rvDev.ToArray<float>(), Is.EqualTo(rvCpu.ToArray<float>()).Within(Tolerance), "running var");
        }
        Assert.That(Saw("batch_norm_backward"));
    }

    [Test]
    public void Bf16_tensors_compute_in_fp32_and_round_back_as_on_the_cpu()
    {
        using var x32 = Randn([4, 6], 28);
        using var y32 = Randn([6], 29);
        using var x = x32.To(DType.BFloat16);
        using var y = y32.To(DType.BFloat16);
        foreach (
            var (primitive, f) in new (string, Func<Tensor[], Tensor>)[]
            {
                ("binary", t => Ops.Add(t[0], t[1])),
                ("binary", t => Ops.Mul(t[0], t[1])),
                ("binary", t => Ops.MulScalar(t[0], 3)),
                ("unary", t => F.Gelu(t[0])),
                ("sum", t => Ops.Sum(t[0], [1])),
                ("sum", t => Ops.Mean(t[0])),
                ("extreme", t => Ops.Max(t[0], 0).Values),
                ("extreme", t => Ops.ArgMax(t[0], 1)),
                ("softmax", t => F.Softmax(t[0], 1)),
                ("layer_norm", t => F.LayerNorm(t[0], [6])),
                ("gemm", t => Ops.MatMul(t[0], Ops.Transpose(t[0], 0, 1))),
            }
        )
            SameWithin(0.05, primitive, f, x, y); // one bf16 step at the magnitudes here is ≤ 0.03
        using var labels = Tensor.FromArray([0L, 5, 2, 3]);
        SameWithin(0.05, "cross_entropy", t => F.CrossEntropy(t[0], t[1]), x, labels);
    }

    [Test]
    public void The_composite_reductions_and_elementwise_ops_stay_on_the_device()
    {
        using var x = Randn([3, 4, 5], 21);
        using var y = Randn([5], 22);
        using var w = Tensor.Rand([3, 1, 1], DType.Float32, new Generator(23));
        Same("extreme", t => Ops.Amax(t[0], [0, 2]), x);
        Same("extreme", t => Ops.Amin(t[0], [1], keepDim: true), x);
        Same("sum", t => Ops.VectorNorm(t[0], 3, [2]), x);
        Same("sum", t => Ops.NanMean(t[0], [0]), x);
        Same("binary", t => Ops.Hypot(t[0], t[1]), x, y);
        Same("binary", t => Ops.Lerp(t[0], t[1], t[2]), x, y, w);
        Same("where", t => Ops.NanToNum(t[0]), x);
        Same("sum", t => Ops.CountNonzero(t[0], [1]), x);
    }

    [Test]
    public void Integer_and_bool_casts_stay_on_the_device()
    {
        using var x = Tensor.FromArray([-2.7f, 0, 0.5f, 3.9f]);
        Same("copy", t => t[0].To(DType.Int64), x);
        Same("copy", t => t[0].To(DType.Bool), x);
        using var ids = Tensor.FromArray([3L, -1, 0]);
        Same("copy", t => t[0].To(DType.Float32), ids);
        using var labels = Tensor.FromArray([2L, 0, 1, 2], 2, 2);
        Same("compare", t => Ops.OneHot(t[0], 4), labels);
    }
}

/// <summary><see cref="DeviceSelectTests"/> on the test backend (external:0).</summary>
[TestFixture]
[NonParallelizable] // the backend registry is process-wide
public class HostDeviceSelectTests : DeviceSelectTests
{
    private HostDeviceBackend _backend = null!;

    protected override Device Dev => Device.External(0);

    protected override double Tolerance => 1e-5;

    protected override bool Saw(string primitive) => _backend.Calls.ContainsKey(primitive);

    [SetUp]
    public void Register()
    {
        _backend = new HostDeviceBackend();
        DeviceBackends.Register(DeviceType.External, _backend);
    }

    [TearDown]
    public void Unregister() => DeviceBackends.Unregister(DeviceType.External);
}
