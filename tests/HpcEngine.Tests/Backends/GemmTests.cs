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
            [6, 32, 256],
            [7, 33, 257],
            [12, 63, 9],
            [13, 31, 29],
            [61, 97, 253],
            [121, 50, 300],
            [128, 3, 700],
            [2, 1000, 5],
            [97, 3100, 7],
            [32, 9, 20000],
            [3, 5, 4099],
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

    [TestCase(1, true)]
    [TestCase(37, true)]
    [TestCase(256, false)]
    public unsafe void The_avx512_micro_kernel_matches_the_reference_on_any_machine(int kc, bool overwrite)
    {
        // Called directly, so an AVX2-only machine checks it too (Vector512 runs in software there). Packed layouts:
        // A holds 6 values per k, B 32 values per k; C is a 6×32 tile in rows 40 floats apart.
        var rng = new Random(kc);
        float[] a = Enumerable.Range(0, 6 * kc).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        float[] b = Enumerable.Range(0, 32 * kc).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        float[] c = Enumerable.Range(0, 6 * 40).Select(i => (float)i).ToArray();
        var before = (float[])c.Clone();
        fixed (
            float* pa = a,
                pb = b,
                pc = c
        )
            global::HpcEngine.Backends.Cpu.Sgemm.Kernel512(kc, pa, pb, pc, 40, overwrite);
        for (int i = 0; i < 6; i++)
        for (int j = 0; j < 40; j++)
        {
            if (j >= 32)
            {
                Assert.That(c[i * 40 + j], Is.EqualTo(before[i * 40 + j]), "outside the tile untouched");
                continue;
            }
            double want = overwrite ? 0 : before[i * 40 + j];
            for (int p = 0; p < kc; p++)
                want += (double)a[p * 6 + i] * b[p * 32 + j];
            Assert.That(
                c[i * 40 + j],
                Is.EqualTo(want).Within(1e-4 * Math.Sqrt(kc) + 1e-5 * Math.Abs(want)),
                $"({i},{j})"
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
