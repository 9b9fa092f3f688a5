using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Tests.NN;

/// <summary>The modules of issue #16's ops: PyTorch's state-dict names, the same results as the functional forms, and a
/// worked example — a small classifier built from RMSNorm, GroupNorm, Mish, Hardswish and GLU on features made with
/// sin, cos and F.normalize — that learns its task.</summary>
public class NewLayersTests
{
    [Test]
    public void State_dicts_use_pytorchs_names()
    {
        Assert.That(new GroupNorm(2, 6).StateDict().Select(kv => kv.Key), Is.EquivalentTo(new[] { "weight", "bias" }));
        Assert.That(new GroupNorm(2, 6, affine: false).StateDict().Select(kv => kv.Key), Is.Empty);
        Assert.That(new RMSNorm(5).StateDict().Select(kv => kv.Key), Is.EquivalentTo(new[] { "weight" }));
        Assert.That(
            new InstanceNorm(3).StateDict().Select(kv => kv.Key),
            Is.Empty,
            "affine off by default, as in PyTorch"
        );
        Assert.That(
            new InstanceNorm(3, affine: true).StateDict().Select(kv => kv.Key),
            Is.EquivalentTo(new[] { "weight", "bias" })
        );
        Assert.Throws<ArgumentException>(() => new GroupNorm(4, 6));
    }

    [Test]
    public void Conv1d_and_the_pooling_modules_match_their_functions_and_pytorchs_names()
    {
        var conv = new Conv1d(4, 6, 3, padding: 1, groups: 2, generator: new Generator(5));
        Assert.That(conv.StateDict().Select(kv => kv.Key), Is.EquivalentTo(new[] { "weight", "bias" }));
        Assert.That(conv.Weight.ShapeArray, Is.EqualTo(new[] { 6, 2, 3 }));
        using var x = Tensor.Randn([2, 4, 9], DType.Float32, new Generator(6));
        using (var a = conv.Forward(x))
        using (var b = F.Conv1d(x, conv.Weight, conv.Bias, padding: 1, groups: 2))
            Assert.That(a.ToArray<float>(), Is.EqualTo(b.ToArray<float>()));
        using var img = Tensor.Randn([2, 3, 5, 7], DType.Float32, new Generator(7));
        using (var pooled = new AdaptiveAvgPool2d((1, 1)).Forward(img))
        using (var mean = HpcEngine.Ops.Mean(img, [2, 3], keepDim: true))
            Assert.That(pooled.ToArray<float>(), Is.EqualTo(mean.ToArray<float>()).Within(1e-6), "global average pool");
        using (var pooled = new AdaptiveMaxPool2d((1, 1)).Forward(img))
        using (var max = HpcEngine.Ops.Amax(img, [2, 3], keepDim: true))
            Assert.That(pooled.ToArray<float>(), Is.EqualTo(max.ToArray<float>()));
        using (var a = new MaxPool1d(2).Forward(x))
            Assert.That(a.ShapeArray, Is.EqualTo(new[] { 2, 4, 4 }));
        using (var a = new AvgPool1d(3, stride: 1, padding: 1).Forward(x))
            Assert.That(a.ShapeArray, Is.EqualTo(new[] { 2, 4, 9 }));
    }

    [Test]
    public void ConvTranspose2d_is_the_adjoint_of_conv2d_and_upsamples_like_pytorchs()
    {
        var up = new ConvTranspose2d(6, 4, 4, stride: 2, padding: 1, groups: 2, generator: new Generator(8));
        Assert.That(up.StateDict().Select(kv => kv.Key), Is.EquivalentTo(new[] { "weight", "bias" }));
        Assert.That(up.Weight.ShapeArray, Is.EqualTo(new[] { 6, 2, 4, 4 }), "[in, out / groups, k, k]");
        using var x = Tensor.Randn([2, 6, 5, 5], DType.Float64, new Generator(9));
        using var w = Tensor.Randn([6, 2, 4, 4], DType.Float64, new Generator(10));
        using var y = F.ConvTranspose2d(x, w, stride: 2, padding: 1, groups: 2);
        Assert.That(y.ShapeArray, Is.EqualTo(new[] { 2, 4, 10, 10 }), "k 4, stride 2, padding 1 doubles the size");
        // <conv2d(u, w), x> = <u, conv_transpose2d(x, w)> for every u: the one is the other's adjoint.
        using var u = Tensor.Randn([2, 4, 10, 10], DType.Float64, new Generator(11));
        using var cu = F.Conv2d(u, w, null, stride: 2, padding: 1, groups: 2);
        using var lhs = (cu * x).Sum();
        using var rhs = (u * y).Sum();
        Assert.That(lhs.Item(), Is.EqualTo(rhs.Item()).Within(1e-9 * Math.Abs(rhs.Item())));
        using var xf = Tensor.Randn([1, 6, 3, 3], DType.Float32, new Generator(12));
        using (var a = up.Forward(xf))
        using (var b = F.ConvTranspose2d(xf, up.Weight, up.Bias, stride: 2, padding: 1, groups: 2))
            Assert.That(a.ToArray<float>(), Is.EqualTo(b.ToArray<float>()));
    }

    [Test]
    public void Fold_undoes_unfold_where_blocks_do_not_overlap_and_both_refuse_bad_shapes()
    {
        using var x = Tensor.Randn([2, 3, 6, 4], DType.Float32, new Generator(4));
        using var cols = new Unfold(2, stride: 2).Forward(x);
        Assert.That(cols.ShapeArray, Is.EqualTo(new[] { 2, 12, 6 }), "[N, C·k·k, L]");
        using (var back = new Fold((6, 4), 2, stride: 2).Forward(cols))
            Assert.That(back.ToArray<float>(), Is.EqualTo(x.ToArray<float>()));
        // Overlapping blocks add up: folding the unfolded ones counts how many blocks cover each pixel.
        using var ones = Tensor.Ones([1, 1, 3, 3]);
        using var covered = F.Fold(F.Unfold(ones, 2), (3, 3), 2);
        Assert.That(covered.ToArray<float>(), Is.EqualTo(new float[] { 1, 2, 1, 2, 4, 2, 1, 2, 1 }));
        var e = Assert.Throws<ShapeMismatchException>(() => F.Fold(cols, (5, 4), 2, stride: 2));
        Assert.That(e!.Message, Does.Contain("6 blocks given"));
        Assert.Throws<ShapeMismatchException>(() => F.Unfold(x, 7));
        Assert.Throws<ArgumentOutOfRangeException>(() => F.Unfold(x, 2, stride: 0));
    }

    [Test]
    public void ConvTranspose2d_refuses_what_pytorch_refuses_naming_it()
    {
        using var x = Tensor.Randn([1, 2, 3, 3], DType.Float32, new Generator(1));
        using var w = Tensor.Randn([2, 1, 3, 3], DType.Float32, new Generator(2));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => F.ConvTranspose2d(x, w, stride: 2, outputPadding: 2));
        Assert.That(e!.Message, Does.Contain("smaller than either the stride"));
        using var wrong = Tensor.Randn([3, 1, 3, 3], DType.Float32, new Generator(3));
        Assert.Throws<ShapeMismatchException>(() => F.ConvTranspose2d(x, wrong));
        Assert.Throws<ShapeMismatchException>(() => F.ConvTranspose2d(x, w, padding: 3), "the padding eats the output");
        Assert.Throws<ArgumentException>(() => new ConvTranspose2d(3, 4, 3, groups: 2));
        // A window larger than the padded input has no output even where a truncating division says 1 (stride 2).
        using var small = Tensor.Randn([1, 1, 2, 2], DType.Float32, new Generator(4));
        using var k3 = Tensor.Randn([1, 1, 3, 3], DType.Float32, new Generator(5));
        Assert.Throws<ShapeMismatchException>(() => F.Conv2d(small, k3, stride: 2));
        Assert.Throws<ShapeMismatchException>(() => F.MaxPool2d(small, 3, 2));
    }

    [Test]
    public void Modules_compute_what_their_functions_compute()
    {
        using var x = Tensor.Randn([2, 6, 5], DType.Float32, new Generator(3));
        using (var a = new GroupNorm(3, 6).Forward(x))
        using (var b = F.GroupNorm(x, 3))
            Assert.That(a.ToArray<float>(), Is.EqualTo(b.ToArray<float>()));
        using (var a = new RMSNorm(5).Forward(x))
        using (var b = F.RmsNorm(x, [5]))
            Assert.That(a.ToArray<float>(), Is.EqualTo(b.ToArray<float>()));
        using (var a = new InstanceNorm(6).Forward(x))
        using (var b = F.InstanceNorm(x))
            Assert.That(a.ToArray<float>(), Is.EqualTo(b.ToArray<float>()));
        using (var a = new Mish().Forward(x))
        using (var b = F.Mish(x))
            Assert.That(a.ToArray<float>(), Is.EqualTo(b.ToArray<float>()));
        Assert.Throws<ShapeMismatchException>(() => new InstanceNorm(4).Forward(x));
    }

    [Test]
    public void A_model_of_the_new_layers_learns_a_nonlinear_task()
    {
        // Two classes of points in the plane: inside or outside a wavy boundary. Features: the point normalised, and
        // sin / cos of the angle-like coordinates.
        const int n = 512;
        var rng = new Random(1);
        var xy = new float[n * 2];
        var labels = new long[n];
        for (int i = 0; i < n; i++)
        {
            float x = (float)(rng.NextDouble() * 4 - 2),
                y = (float)(rng.NextDouble() * 4 - 2);
            xy[2 * i] = x;
            xy[2 * i + 1] = y;
            labels[i] = y > Math.Sin(2 * x) ? 1 : 0;
        }
        using var points = Tensor.FromArray(xy, n, 2);
        using var s = points.Sin();
        using var c = points.Cos();
        using var unit = F.Normalize(points);
        using var features = HpcEngine.Ops.Cat([points, s, c, unit], 1); // [n, 8]
        using var target = Tensor.FromArray(labels, n);
        var g = new Generator(7);
        var model = new Sequential(
            new Linear(8, 32, generator: g),
            new RMSNorm(32),
            new Mish(),
            new Linear(32, 64, generator: g),
            new GLU(), // 64 → 32
            new GroupNorm(4, 32),
            new Hardswish(),
            new Linear(32, 2, generator: g)
        );
        var opt = new Adam(model.Parameters(), 1e-2);
        double first = double.NaN,
            last = double.NaN;
        for (int step = 0; step < 300; step++)
        {
            using var scope = new TensorScope();
            opt.ZeroGrad();
            using var logits = model.Forward(features);
            using var loss = F.CrossEntropy(logits, target);
            loss.Backward();
            opt.Step();
            last = loss.ToArray<float>()[0];
            if (step == 0)
                first = last;
        }
        using var final = model.Forward(features);
        using var predicted = HpcEngine.Ops.ArgMax(final, 1);
        var p = predicted.ToArray<long>();
        double accuracy = p.Zip(labels).Count(t => t.First == t.Second) / (double)n;
        Assert.That(last, Is.LessThan(first / 4), $"loss {first:F3} → {last:F3}");
        Assert.That(accuracy, Is.GreaterThan(0.93), "the boundary is learnt");
    }

    /// <summary>A U-Net in miniature: encoder conv, a ceil-mode max pool (7x7 images: the last window hangs off), a
    /// transposed convolution back up, the skip joined with cat, cropped to the input with narrow, and a 1x1 head —
    /// segmenting a bright square from noise.</summary>
    private sealed class TinyUNet : Module
    {
        private readonly Conv2d _enc,
            _mid,
            _head;
        private readonly ConvTranspose2d _up;
        private readonly MaxPool2d _pool = new(2, ceilMode: true);

        public TinyUNet(Generator g)
        {
            _enc = RegisterModule("enc", new Conv2d(1, 6, 3, padding: 1, generator: g));
            _mid = RegisterModule("mid", new Conv2d(6, 8, 3, padding: 1, generator: g));
            _up = RegisterModule("up", new ConvTranspose2d(8, 6, 2, stride: 2, generator: g));
            _head = RegisterModule("head", new Conv2d(12, 1, 1, generator: g));
        }

        public override Tensor Forward(Tensor x)
        {
            using var e = F.Relu(_enc.Forward(x)); // [N, 6, 7, 7]
            using var down = _pool.Forward(e); // [N, 6, 4, 4] (ceil mode)
            using var m = F.Relu(_mid.Forward(down));
            using var up = _up.Forward(m); // [N, 6, 8, 8]
            using var crop = up.Narrow(2, 0, 7).Narrow(3, 0, 7);
            using var joined = HpcEngine.Ops.Cat([e, crop], 1);
            return _head.Forward(joined);
        }
    }

    [Test]
    public void A_unet_of_the_new_layers_learns_to_segment()
    {
        const int n = 64,
            size = 7;
        var rng = new Random(3);
        var images = new float[n * size * size];
        var masks = new float[n * size * size];
        for (int i = 0; i < n; i++)
        {
            int r0 = rng.Next(0, size - 2),
                c0 = rng.Next(0, size - 2);
            for (int r = 0; r < size; r++)
            for (int c = 0; c < size; c++)
            {
                bool inside = r >= r0 && r < r0 + 3 && c >= c0 && c < c0 + 3;
                int at = (i * size + r) * size + c;
                masks[at] = inside ? 1 : 0;
                images[at] = (inside ? 1f : 0f) + (float)(rng.NextDouble() - 0.5) * 0.6f;
            }
        }
        using var x = Tensor.FromArray(images, n, 1, size, size);
        using var target = Tensor.FromArray(masks, n, 1, size, size);
        var model = new TinyUNet(new Generator(11));
        Assert.That(model.StateDict().Select(kv => kv.Key), Does.Contain("up.weight").And.Contain("head.bias"));
        var opt = new Adam(model.Parameters(), 2e-2);
        double first = double.NaN,
            last = double.NaN;
        for (int step = 0; step < 150; step++)
        {
            using var scope = new TensorScope();
            opt.ZeroGrad();
            using var logits = model.Forward(x);
            using var loss = F.BinaryCrossEntropyWithLogits(logits, target);
            loss.Backward();
            opt.Step();
            last = loss.ToArray<float>()[0];
            if (step == 0)
                first = last;
        }
        using var final = model.Forward(x);
        var predicted = final.ToArray<float>();
        double accuracy = predicted.Zip(masks).Count(t => (t.First > 0) == (t.Second > 0.5)) / (double)masks.Length;
        Assert.That(last, Is.LessThan(first / 5), $"loss {first:F3} → {last:F3}");
        Assert.That(accuracy, Is.GreaterThan(0.97), "pixels of the square found");
    }
}
