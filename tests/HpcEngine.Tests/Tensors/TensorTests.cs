using HpcEngine.Autograd;

namespace HpcEngine.Tests.Tensors;

[TestFixture]
public class TensorTests
{
    [Test]
    public void Creation_functions_give_the_documented_values()
    {
        Assert.That(Tensor.Arange(5).ToArray<long>(), Is.EqualTo(new long[] { 0, 1, 2, 3, 4 }));
        Assert.That(
            Tensor.Arange(1, 2, 0.25, DType.Float64).ToArray<double>(),
            Is.EqualTo(new[] { 1, 1.25, 1.5, 1.75 })
        );
        Assert.That(Tensor.Linspace(0, 1, 5).ToArray<float>(), Is.EqualTo(new[] { 0f, 0.25f, 0.5f, 0.75f, 1f }));
        Assert.That(Tensor.Eye(2, 3).ToArray<float>(), Is.EqualTo(new float[] { 1, 0, 0, 0, 1, 0 }));
        Assert.That(Tensor.Full([2, 2], 7, DType.Int32).ToArray<int>(), Is.All.EqualTo(7));
        Assert.That(Tensor.Zeros([0, 3]).NumEl, Is.Zero);
        Assert.That(Tensor.Scalar(2.5).Item(), Is.EqualTo(2.5));
    }

    [Test]
    public void Random_streams_are_reproducible_and_statistically_sane()
    {
        var a = Tensor.Randn([10000], DType.Float64, new Generator(9)).ToArray<double>();
        var b = Tensor.Randn([10000], DType.Float64, new Generator(9)).ToArray<double>();
        Assert.That(a, Is.EqualTo(b));
        Assert.That(a.Average(), Is.EqualTo(0).Within(0.05));
        Assert.That(Math.Sqrt(a.Select(v => v * v).Average()), Is.EqualTo(1).Within(0.05));
        var u = Tensor.Rand([10000], DType.Float32, new Generator(3)).ToArray<float>();
        Assert.That(u.Min(), Is.GreaterThanOrEqualTo(0f));
        Assert.That(u.Max(), Is.LessThan(1f));
        var ints = Tensor.Randint(3, 7, [1000], generator: new Generator(4)).ToArray<long>();
        Assert.That(ints.Distinct().Order(), Is.EqualTo(new long[] { 3, 4, 5, 6 }));
        var bern = Tensor.Bernoulli([20000], 0.3, generator: new Generator(5)).ToArray<float>();
        Assert.That(bern.Average(), Is.EqualTo(0.3).Within(0.02));
    }

    [Test]
    public void Generator_advances_so_consecutive_draws_differ()
    {
        var g = new Generator(1);
        var a = Tensor.Rand([5], generator: g).ToArray<float>();
        var b = Tensor.Rand([5], generator: g).ToArray<float>();
        Assert.That(a, Is.Not.EqualTo(b));
        Assert.That(g.Offset, Is.EqualTo(4UL), "5 numbers take 2 Philox blocks each draw");
    }

    [Test]
    public void Philox_matches_the_published_known_answer()
    {
        // Random123 kat_vectors: philox4x32_10 with counter = key = 0.
        var (a, b, c, d) = Philox.Block(0, 0, 0, 0, 0, 0);
        Assert.That(new[] { a, b, c, d }, Is.EqualTo(new uint[] { 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 }));
        // counter = key = all ones.
        (a, b, c, d) = Philox.Block(
            uint.MaxValue,
            uint.MaxValue,
            uint.MaxValue,
            uint.MaxValue,
            uint.MaxValue,
            uint.MaxValue
        );
        Assert.That(new[] { a, b, c, d }, Is.EqualTo(new uint[] { 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd }));
    }

    [Test]
    public void Views_share_storage_and_see_writes()
    {
        using var x = Tensor.FromArray([1f, 2, 3, 4, 5, 6], 2, 3);
        using var t = x.T();
        Assert.That(t.IsContiguous, Is.False);
        Assert.That(t[2, 1], Is.EqualTo(6));
        using var row = x.Select(0, 1);
        row.Fill(0);
        Assert.That(x.ToArray<float>(), Is.EqualTo(new float[] { 1, 2, 3, 0, 0, 0 }));
        using var tc = t.Contiguous();
        Assert.That(tc.ToArray<float>(), Is.EqualTo(new float[] { 1, 0, 2, 0, 3, 0 }));
    }

    [Test]
    public void Reshape_views_when_possible_and_copies_otherwise()
    {
        using var x = Tensor.Arange(0, 12, 1, DType.Float32).Reshape(3, 4);
        using var v = x.Reshape(2, -1);
        Assert.That(v.ShapeArray, Is.EqualTo(new[] { 2, 6 }));
        using var t = x.T();
        Assert.Throws<ShapeMismatchException>(() => t.View(12));
        using var flat = t.Reshape(12);
        Assert.That(flat.ToArray<float>()[..4], Is.EqualTo(new float[] { 0, 4, 8, 1 }));
        Assert.Throws<ShapeMismatchException>(() => x.Reshape(5, -1));
    }

    [Test]
    public void Broadcasting_follows_numpy_rules_and_names_the_failure()
    {
        using var a = Tensor.Ones([3, 1, 5]);
        using var b = Tensor.Ones([4, 1]);
        using var c = a + b;
        Assert.That(c.ShapeArray, Is.EqualTo(new[] { 3, 4, 5 }));
        using var d = Tensor.Ones([3]);
        using var e = Tensor.Ones([4]);
        var ex = Assert.Throws<ShapeMismatchException>(() => _ = d + e);
        Assert.That(ex!.Message, Does.Contain("add").And.Contain("[3]").And.Contain("[4]").And.Contain("broadcast"));
    }

    [Test]
    public void Dtype_conversions_round_as_documented()
    {
        using var x = Tensor.FromArray([1.0f, -2.5f, 3.999f, 65504f]);
        Assert.That(x.To(DType.Int32).ToArray<int>(), Is.EqualTo(new[] { 1, -2, 3, 65504 }));
        Assert.That(x.To(DType.Float16).To(DType.Float32).ToArray<float>()[3], Is.EqualTo(65504f));
        // bf16 keeps 8 mantissa bits; 1 + 2^-8 is a tie and rounds to even (1.0), 1 + 3*2^-8 rounds up.
        using var y = Tensor.FromArray([1f + 1f / 256, 1f + 3f / 256]);
        Assert.That(y.To(DType.BFloat16).To(DType.Float32).ToArray<float>(), Is.EqualTo(new[] { 1f, 1f + 4f / 256 }));
        using var z = Tensor.FromArray([0f, 2f]).To(DType.Bool);
        Assert.That(z.ToArray<byte>(), Is.EqualTo(new byte[] { 0, 1 }));
    }

    [Test]
    public void Reduced_precision_tensors_compute_in_float32()
    {
        using var a = Tensor.FromArray([1f, 2f, 3f]).To(DType.BFloat16);
        using var s = a * a;
        Assert.That(s.DType, Is.EqualTo(DType.BFloat16));
        Assert.That(s.To(DType.Float32).ToArray<float>(), Is.EqualTo(new[] { 1f, 4f, 9f }));
    }

    [Test]
    public void Integer_ops_stay_exact()
    {
        using var a = Tensor.FromArray([5L, -7L, 9L]);
        using var b = Tensor.FromArray([2L, 3L, -4L]);
        Assert.That((a + b).ToArray<long>(), Is.EqualTo(new long[] { 7, -4, 5 }));
        Assert.That((a * b).ToArray<long>(), Is.EqualTo(new long[] { 10, -21, -36 }));
        Assert.That(a.Sum().ToArray<long>(), Is.EqualTo(new long[] { 7 }));
        Assert.That(HpcEngine.Ops.Gt(a, b).ToArray<byte>(), Is.EqualTo(new byte[] { 1, 0, 1 }));
        Assert.That(HpcEngine.Ops.ArgMax(Tensor.FromArray([1f, 9f, 3f]), 0).Item(), Is.EqualTo(1));
    }

    [Test]
    public void One_hot_and_masks()
    {
        using var oh = HpcEngine.Ops.OneHot(Tensor.FromArray([2L, 0L]), 3);
        Assert.That(oh.ToArray<long>(), Is.EqualTo(new long[] { 0, 0, 1, 1, 0, 0 }));
        Assert.Throws<IndexOutOfRangeException>(() => HpcEngine.Ops.OneHot(Tensor.FromArray([3L]), 3));
    }

    [Test]
    public void Empty_and_single_element_tensors_work_through_the_ops()
    {
        using var e = Tensor.Zeros([0, 5]);
        Assert.That(F.Softmax(e, 1).ShapeArray, Is.EqualTo(new[] { 0, 5 }));
        Assert.That(e.Sum(0).ToArray<float>(), Is.EqualTo(new float[5]));
        Assert.That(e.MatMul(Tensor.Ones([5, 2])).ShapeArray, Is.EqualTo(new[] { 0, 2 }));
        using var one = Tensor.FromArray([3f]);
        Assert.That(F.Softmax(one, 0).Item(), Is.EqualTo(1));
        Assert.Throws<ShapeMismatchException>(() => Tensor.Zeros([0]).Max());
    }

    [Test]
    public void Disposed_tensor_use_is_a_clear_error()
    {
        var x = Tensor.Ones([2]);
        x.Dispose();
        var ex = Assert.Throws<ObjectDisposedException>(() => x.Sum());
        Assert.That(ex!.Message, Does.Contain("disposed"));
        x.Dispose(); // twice is fine
    }

    [Test]
    public void Dtype_errors_name_the_op()
    {
        using var i = Tensor.FromArray([1, 2]);
        var ex = Assert.Throws<DTypeMismatchException>(() => i.MatMul(i));
        Assert.That(ex!.Message, Does.Contain("matmul"));
        Assert.Throws<DTypeMismatchException>(() => i.RequiresGrad = true);
        using var f = Tensor.Ones([2, 2]);
        using var d = Tensor.Ones([2, 2], DType.Float64);
        Assert.Throws<DTypeMismatchException>(() => f.MatMul(d));
    }

    [Test]
    public void Cross_entropy_rejects_out_of_range_classes()
    {
        using var logits = Tensor.Zeros([2, 3]);
        var ex = Assert.Throws<IndexOutOfRangeException>(() => F.CrossEntropy(logits, Tensor.FromArray([0L, 3L])));
        Assert.That(ex!.Message, Does.Contain("3 classes"));
    }

    [Test]
    public void Dropout_is_identity_in_eval_and_unbiased_in_training()
    {
        using var x = Tensor.Ones([10000]);
        Assert.That(F.Dropout(x, 0.5, training: false).ToArray<float>(), Is.All.EqualTo(1f));
        var y = F.Dropout(x, 0.25, training: true, generator: new Generator(2)).ToArray<float>();
        Assert.That(y.Distinct().Order(), Is.EqualTo(new[] { 0f, 1f / 0.75f }));
        Assert.That(y.Average(), Is.EqualTo(1).Within(0.03));
    }

    [Test]
    public void Batch_norm_updates_running_statistics_like_pytorch()
    {
        using var x = Tensor.FromArray([1f, 2f, 3f, 4f, 5f, 6f], 3, 2);
        using var rm = Tensor.Zeros([2]);
        using var rv = Tensor.Ones([2]);
        using (GradMode.NoGrad())
            F.BatchNorm(x, rm, rv, training: true, momentum: 0.1).Dispose();
        // column means 3, 4; unbiased variances 4, 4
        Assert.That(rm.ToArray<float>(), Is.EqualTo(new[] { 0.3f, 0.4f }).Within(1e-6));
        Assert.That(rv.ToArray<float>(), Is.EqualTo(new[] { 0.9f + 0.4f, 0.9f + 0.4f }).Within(1e-6));
    }

    [Test]
    public void Steady_loop_reuses_pooled_storage()
    {
        using var w = Tensor.Randn([64, 64], DType.Float32, new Generator(1)).RequiresGrad_();
        using var x = Tensor.Randn([32, 64], DType.Float32, new Generator(2));
        void Step()
        {
            using var scope = new TensorScope();
            F.Relu(x.MatMul(w)).Sum().Backward();
            using (GradMode.NoGrad())
                w.AddInPlace(w.Grad!, -0.01);
            w.ZeroGrad();
        }
        for (int i = 0; i < 3; i++)
            Step();
        long allocated = StoragePool.Allocated;
        for (int i = 0; i < 20; i++)
            Step();
        Assert.That(
            StoragePool.Allocated - allocated,
            Is.LessThanOrEqualTo(2),
            "a steady loop must take its buffers from the pool"
        );
    }
}
