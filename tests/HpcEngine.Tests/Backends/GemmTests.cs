namespace HpcEngine.Tests.Backends;

/// <summary>The packed SGEMM against a float64 reference over odd shapes (edges of every tile size) and
/// layouts.</summary>
[TestFixture]
public class GemmTests
{
    public static IEnumerable<int[]> Shapes() =>
        [
            [1, 1, 1],
            [0, 3, 4],
            [3, 0, 4],
            [3, 4, 0],
            [5, 7, 3],
            [6, 16, 256],
            [7, 17, 257],
            [13, 31, 29],
            [61, 97, 253],
            [121, 50, 300],
            [128, 3, 700],
            [2, 1000, 5],
            [97, 3100, 7],
        ];

    [TestCaseSource(nameof(Shapes))]
    public void Matches_float64_reference(int[] mnk)
    {
        int m = mnk[0],
            n = mnk[1],
            k = mnk[2];
        foreach (var (ta, tb) in new[] { (false, false), (true, false), (false, true), (true, true) })
        {
            using var scope = new TensorScope();
            var a = ta
                ? Tensor.Randn([k, m], DType.Float32, new Generator(1)).T()
                : Tensor.Randn([m, k], DType.Float32, new Generator(1));
            var b = tb
                ? Tensor.Randn([n, k], DType.Float32, new Generator(2)).T()
                : Tensor.Randn([k, n], DType.Float32, new Generator(2));
            var c = a.MatMul(b);
            var cref = a.To(DType.Float64).MatMul(b.To(DType.Float64));
            var got = c.ToArray<float>();
            var want = cref.ToArray<double>();
            Assert.That(got, Has.Length.EqualTo(m * n));
            double tol = 1e-5 * Math.Sqrt(Math.Max(k, 1)) * 4;
            for (int i = 0; i < got.Length; i++)
                Assert.That(
                    got[i],
                    Is.EqualTo(want[i]).Within(tol + 1e-5 * Math.Abs(want[i])),
                    $"({m},{n},{k}) transA={ta} transB={tb} element {i}"
                );
        }
    }

    [Test]
    public void Inner_dimension_mismatch_names_the_op_and_shapes()
    {
        using var a = Tensor.Zeros([2, 3]);
        using var b = Tensor.Zeros([4, 5]);
        var ex = Assert.Throws<ShapeMismatchException>(() => a.MatMul(b));
        Assert.That(ex!.Message, Does.Contain("matmul").And.Contain("[2, 3]").And.Contain("[4, 5]"));
    }
}
