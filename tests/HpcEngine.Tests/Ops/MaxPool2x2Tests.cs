namespace HpcEngine.Tests.Ops;

/// <summary>The vectorised 2×2 stride-2 max pool (8 and 4 outputs per step, a scalar tail) against the rule written
/// out here: a candidate, taken in the order top-left, top-right, bottom-left, bottom-right, replaces the best when
/// it is larger or NaN. Values drawn from a few integers make ties common (the first of equal values wins); NaNs
/// scattered in must propagate with the last NaN's index. Widths give 8+4+2, 4+3, 8+4+3 and 1 outputs per row, odd
/// widths leave a column unused, and the gradient must go where the index says.</summary>
public class MaxPool2x2Tests
{
    [TestCase(3, 28, 28)]
    [TestCase(2, 14, 14)]
    [TestCase(2, 9, 31)]
    [TestCase(1, 2, 2)]
    public void Values_indices_and_gradient_follow_the_rule(int planes, int h, int w)
    {
        using var scope = new TensorScope();
        var rng = new Random(7);
        var data = new float[planes * h * w];
        for (int i = 0; i < data.Length; i++)
            data[i] = rng.Next(20) == 0 ? float.NaN : rng.Next(-3, 4);
        var x = Tensor.FromArray(data, [1, planes, h, w]).RequiresGrad_();
        var (y, idx) = F.MaxPool2dWithIndices(x, 2);
        int oh = h / 2,
            ow = w / 2;
        var values = y.Detach().ToArray<float>();
        var indices = idx.ToArray<long>();
        var grad = new float[data.Length];
        for (int p = 0; p < planes; p++)
        for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
        {
            int o = (p * oh + oy) * ow + ox;
            int bi = -1;
            float best = 0;
            foreach (var (dy, dx) in new[] { (0, 0), (0, 1), (1, 0), (1, 1) })
            {
                int at = (2 * oy + dy) * w + 2 * ox + dx;
                float v = data[p * h * w + at];
                if (bi < 0 || v > best || float.IsNaN(v))
                {
                    best = v;
                    bi = at;
                }
            }
            Assert.That(indices[o], Is.EqualTo(bi), $"plane {p} output ({oy}, {ox}): index");
            Assert.That(values[o], float.IsNaN(best) ? Is.NaN : Is.EqualTo(best), $"plane {p} ({oy}, {ox}): value");
            grad[p * h * w + bi] += o + 1;
        }
        var gy = Tensor.FromArray(Enumerable.Range(1, values.Length).Select(i => (float)i).ToArray(), y.ShapeArray);
        y.Backward(gy);
        Assert.That(x.Grad!.ToArray<float>(), Is.EqualTo(grad), "each output's gradient lands on its index");
    }
}
