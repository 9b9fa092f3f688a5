namespace HpcEngine.Tests.Ops;

/// <summary>The CPU convolution unfolds a batch a chunk of images at a time (about 2 MB of unfolded input each): a
/// batch large enough for several chunks, the last one short, must give what each image gives alone — outputs, input
/// gradients, and the weight and bias gradients summed over images.</summary>
public class ConvChunkTests
{
    [TestCase(DType.Float32, 1, 1, 1, 32)]
    [TestCase(DType.Float32, 2, 0, 2, 64)]
    [TestCase(DType.Float64, 1, 2, 1, 32)]
    public void A_batch_of_several_chunks_equals_its_images_one_by_one(
        DType dtype,
        int stride,
        int padding,
        int groups,
        int size
    )
    {
        // [20, 8, S, S] with 3×3: 8/g·9 × OH·OW values per image, so 2 MB holds 7 (float32, 32×32), 15 (stride 2 on
        // 64×64, groups 2) or 3 (float64) images: every case has several chunks, the last one short.
        const int n = 20;
        using var scope = new TensorScope();
        var x = Tensor.Randn([n, 8, size, size], dtype, new Generator(1)).RequiresGrad_();
        var w = Tensor.Randn([6, 8 / groups, 3, 3], dtype, new Generator(2)).RequiresGrad_();
        var b = Tensor.Randn([6], dtype, new Generator(3)).RequiresGrad_();
        var y = F.Conv2d(x, w, b, stride, padding, groups: groups);
        var gy = Tensor.Randn(y.ShapeArray, dtype, new Generator(4));
        y.Backward(gy);
        var dwSum = new double[w.NumEl];
        var dbSum = new double[6];
        double tol = dtype == DType.Float32 ? 2e-4 : 1e-10;
        for (int i = 0; i < n; i++)
        {
            var xi = x.Detach().Narrow(0, i, 1).Contiguous().RequiresGrad_();
            var wi = w.Detach().RequiresGrad_();
            var bi = b.Detach().RequiresGrad_();
            var yi = F.Conv2d(xi, wi, bi, stride, padding, groups: groups);
            Assert.That(
                yi.ToArray<double>(),
                Is.EqualTo(y.Detach().Narrow(0, i, 1).ToArray<double>()).Within(tol),
                $"image {i}: output"
            );
            yi.Backward(gy.Narrow(0, i, 1).Contiguous());
            Assert.That(
                xi.Grad!.ToArray<double>(),
                Is.EqualTo(x.Grad!.Narrow(0, i, 1).ToArray<double>()).Within(tol),
                $"image {i}: dx"
            );
            var dw = wi.Grad!.ToArray<double>();
            for (int k = 0; k < dw.Length; k++)
                dwSum[k] += dw[k];
            var db = bi.Grad!.ToArray<double>();
            for (int k = 0; k < 6; k++)
                dbSum[k] += db[k];
        }
        Assert.That(w.Grad!.ToArray<double>(), Is.EqualTo(dwSum).Within(tol * 50), "dw summed over the chunks");
        Assert.That(b.Grad!.ToArray<double>(), Is.EqualTo(dbSum).Within(tol * 50));
    }
}
