using HpcEngine.Backends.Cpu;

namespace HpcEngine.Tests.Ops;

/// <summary>The CPU's whole-batch convolution (images split over threads, "same" convolutions unfolded as shifted
/// planes) against a direct convolution written out in float64 here: output, input, weight and bias gradients over
/// odd shapes — channels that fill no vector, 1×1 / 3×3 / 5×5 kernels, stride 2, padding 0 to 3, dilation, groups,
/// non-square and 1×1 images, more than one k-block of the GEMM — in float32 and float64. Batch 1 takes the lowering
/// above the primitives and must agree too.</summary>
[NonParallelizable] // sets the process-wide kernel thread count
public class ImageConvTests
{
    private int _threads;

    [SetUp]
    public void TwoThreads()
    {
        _threads = KernelThreads.Count;
        KernelThreads.Count = 2; // at most the core count: 9 images are then enough for the image split
    }

    [TearDown]
    public void Restore() => KernelThreads.Count = _threads;

    // n, c, o, h, w, k, stride, padding, dilation, groups
    [TestCase(9, 3, 5, 7, 6, 3, 1, 1, 1, 1)]
    [TestCase(9, 4, 6, 8, 8, 1, 1, 0, 1, 2)]
    [TestCase(9, 3, 5, 9, 7, 5, 1, 2, 1, 1)]
    [TestCase(9, 3, 4, 9, 9, 3, 2, 1, 1, 1)]
    [TestCase(9, 2, 3, 8, 8, 3, 1, 0, 1, 1)]
    [TestCase(9, 2, 3, 9, 9, 3, 1, 2, 2, 1)]
    [TestCase(9, 2, 3, 5, 5, 3, 1, 3, 1, 1)]
    [TestCase(9, 1, 2, 1, 1, 3, 1, 1, 1, 1)]
    [TestCase(9, 32, 64, 14, 14, 3, 1, 1, 1, 1)]
    [TestCase(1, 3, 5, 7, 7, 3, 1, 1, 1, 1)]
    public void Matches_a_direct_convolution(int n, int c, int o, int h, int w, int k, int s, int p, int d, int g)
    {
        Assert.That(ImageConv.Applies(n), Is.EqualTo(n > 1), "the case takes the path it is meant to test");
        foreach (var dtype in new[] { DType.Float32, DType.Float64 })
            Check(dtype, n, c, o, h, w, k, s, p, d, g);
    }

    private static void Check(DType dtype, int n, int c, int o, int h, int w, int k, int s, int p, int d, int g)
    {
        using var scope = new TensorScope();
        var x = Tensor.Randn([n, c, h, w], dtype, new Generator(1)).RequiresGrad_();
        var wt = Tensor.Randn([o, c / g, k, k], dtype, new Generator(2)).RequiresGrad_();
        var b = Tensor.Randn([o], dtype, new Generator(3)).RequiresGrad_();
        var y = F.Conv2d(x, wt, b, s, p, d, g);
        var gy = Tensor.Randn(y.ShapeArray, dtype, new Generator(4));
        y.Backward(gy);
        var r = Direct(
            x.Detach().ToArray<double>(),
            wt.Detach().ToArray<double>(),
            b.Detach().ToArray<double>(),
            gy.ToArray<double>(),
            [n, c, h, w],
            o,
            k,
            s,
            p,
            d,
            g
        );
        double tol = dtype == DType.Float32 ? 1e-3 : 1e-10;
        string at = $"{dtype}";
        Assert.That(y.ShapeArray, Is.EqualTo(new[] { n, o, r.OH, r.OW }), at);
        Assert.That(y.Detach().ToArray<double>(), Is.EqualTo(r.Y).Within(tol), $"{at} output");
        Assert.That(x.Grad!.ToArray<double>(), Is.EqualTo(r.Dx).Within(tol), $"{at} dx");
        Assert.That(wt.Grad!.ToArray<double>(), Is.EqualTo(r.Dw).Within(tol * 10), $"{at} dw");
        Assert.That(b.Grad!.ToArray<double>(), Is.EqualTo(r.Db).Within(tol * 10), $"{at} db");
    }

    private sealed record Reference(int OH, int OW, double[] Y, double[] Dx, double[] Dw, double[] Db);

    /// <summary>Every output, and every gradient, as the definition's sums.</summary>
    private static Reference Direct(
        double[] x,
        double[] wt,
        double[] bias,
        double[] gy,
        int[] shape,
        int o,
        int k,
        int s,
        int p,
        int d,
        int g
    )
    {
        int n = shape[0],
            c = shape[1],
            h = shape[2],
            w = shape[3];
        int oh = (h + 2 * p - d * (k - 1) - 1) / s + 1,
            ow = (w + 2 * p - d * (k - 1) - 1) / s + 1;
        int cg = c / g,
            og = o / g;
        var y = new double[n * o * oh * ow];
        var dx = new double[x.Length];
        var dw = new double[wt.Length];
        var db = new double[o];
        for (int b = 0; b < n; b++)
        for (int oc = 0; oc < o; oc++)
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        {
            int yi = ((b * o + oc) * oh + oy) * ow + ox;
            double acc = bias[oc];
            db[oc] += gy[yi];
            for (int ci = 0; ci < cg; ci++)
            for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++)
            {
                int iy = oy * s - p + ki * d,
                    ix = ox * s - p + kj * d;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                    continue;
                int xi = ((b * c + oc / og * cg + ci) * h + iy) * w + ix,
                    wi = ((oc * cg + ci) * k + ki) * k + kj;
                acc += x[xi] * wt[wi];
                dx[xi] += gy[yi] * wt[wi];
                dw[wi] += gy[yi] * x[xi];
            }
            y[yi] = acc;
        }
        return new Reference(oh, ow, y, dx, dw, db);
    }
}
