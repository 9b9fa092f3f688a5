namespace HpcEngine.Tests.Ops;

using Ops = HpcEngine.Ops;

/// <summary>solve / inverse / det / cholesky where they can fail or where the formulas meet their edge: singular and
/// indefinite matrices are typed errors naming the batch entry, det's gradient at a singular matrix is its cofactor
/// matrix (PyTorch 1.13 gives zeros there), and closed forms hold.</summary>
public class LinalgEdgeTests
{
    [Test]
    public void A_singular_matrix_is_a_linalg_error_naming_it()
    {
        using var a = Tensor.FromArray([1.0, 0, 0, 1, 1, 2, 2, 4], 2, 2, 2); // the second is singular
        var e = Assert.Throws<LinAlgException>(() => Ops.Inverse(a));
        Assert.That(e!.Message, Does.Contain("matrix 1 of the batch is singular"));
        using var b = Tensor.Ones([2, 2, 1], DType.Float64);
        Assert.Throws<LinAlgException>(() => Ops.Solve(a, b));
        using var indefinite = Tensor.FromArray([1.0, 2, 2, 1], 2, 2);
        var c = Assert.Throws<LinAlgException>(() => Ops.Cholesky(indefinite));
        Assert.That(c!.Message, Does.Contain("leading minor of order 2"));
    }

    [Test]
    public void Det_s_gradient_at_a_singular_matrix_is_its_cofactor_matrix()
    {
        using var a = Tensor.FromArray([1.0, 2, 3, 2, 4, 6, 1, 0, 1], 3, 3).RequiresGrad_();
        using var d = Ops.Det(a);
        Assert.That(d.Item(), Is.EqualTo(0).Within(1e-12));
        d.Backward();
        Assert.That(a.Grad!.ToArray<double>(), Is.EqualTo(new double[] { 4, 4, -4, -2, -2, 2, 0, 0, 0 }).Within(1e-12));
    }

    [Test]
    public void Closed_forms_hold_for_float32_and_empty_batches()
    {
        using var a = Tensor.FromArray([4f, 1, 2, 3], 2, 2);
        using var inv = Ops.Inverse(a);
        Assert.That(inv.ToArray<float>(), Is.EqualTo(new[] { 0.3f, -0.1f, -0.2f, 0.4f }).Within(1e-6));
        using var det = Ops.Det(a);
        Assert.That(det.Item(), Is.EqualTo(10).Within(1e-5));
        using var spd = Tensor.FromArray([4.0, 2, 2, 3], 2, 2);
        using var l = Ops.Cholesky(spd);
        Assert.That(l.ToArray<double>(), Is.EqualTo(new[] { 2, 0, 1, Math.Sqrt(2) }).Within(1e-12));
        using var none = Tensor.Zeros([0, 3, 3], DType.Float64);
        Assert.That(Ops.Det(none).ShapeArray, Is.EqualTo(new[] { 0 }));
        using var empty = Tensor.Zeros([2, 0, 0], DType.Float64);
        Assert.That(Ops.Det(empty).ToArray<double>(), Is.EqualTo(new[] { 1.0, 1.0 }), "det of a 0x0 matrix is 1");
        Assert.Throws<ShapeMismatchException>(() => Ops.Det(Tensor.Zeros([2, 3])));
        Assert.Throws<DTypeMismatchException>(() => Ops.Inverse(Tensor.Zeros([2, 2], DType.Int64)));
    }
}
