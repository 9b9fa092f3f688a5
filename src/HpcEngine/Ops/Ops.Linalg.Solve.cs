using HpcEngine.Autograd;
using HpcEngine.Linalg;

namespace HpcEngine;

/// <summary>torch.linalg's solve, inv, det and cholesky over stacks of square matrices [..., n, n], float32 and
/// float64. The factorisations run on the host in float64 (<see cref="HostFactorizations"/>: LU with partial pivoting,
/// Cholesky–Banachiewicz), so a device tensor is read back, factored and written to its device again (refused
/// under graph capture); the gradients are PyTorch's formulas. A singular matrix (or one that is not positive
/// definite, for cholesky) is a <see cref="LinAlgException"/> naming the batch entry.</summary>
public static partial class Ops
{
    /// <summary>X with A·X = B: <paramref name="a"/> [..., n, n], <paramref name="b"/> [..., n, k], or a vector per
    /// matrix ([n], or [..., n] with A's batch dims), batch dims broadcast as PyTorch's linalg.solve. Backward:
    /// gB = A⁻ᵀ·G, gA = −gB·Xᵀ (summed back over broadcast dims by autograd).</summary>
    public static Tensor Solve(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Rank < 2)
            throw new ShapeMismatchException($"solve: A must be [..., n, n], got {Shapes.Format(a.Shape)}");
        bool vector = b.Rank == 1 || (b.Rank == a.Rank - 1 && b.ShapeArray.SequenceEqual(a.ShapeArray[..^1]));
        using var bm = vector ? Unsqueeze(b, -1) : Identity(b);
        if (bm.Rank < 2 || bm.Shape[^2] != a.Shape[^1])
            throw ShapeMismatchException.For("solve", "B must be [..., n, k] or [..., n] with A's n", a, b);
        var batch = Shapes.Broadcast("solve", a.Shape[..^2], bm.Shape[..^2]);
        using var ae = Expand(a, [.. batch, a.Shape[^2], a.Shape[^1]]);
        using var be = Expand(bm, [.. batch, bm.Shape[^2], bm.Shape[^1]]);
        var x = SolveSameBatch(ae, be);
        return vector ? x.Replace(Squeeze(x, -1)) : x;
    }

    /// <summary>Solve with A [..., n, n] and B [..., n, k] of the same batch dims.</summary>
    private static Tensor SolveSameBatch(Tensor a, Tensor b)
    {
        var (ad, batch, n) = SquareStack("solve", a);
        if (b.DType != a.DType)
            throw new DTypeMismatchException($"solve: A is {a.DType.TorchName()} but B is {b.DType.TorchName()}");
        SameDevice("solve", a, b);
        int m = b.Shape[^1];
        var x = SolveStack("solve", ad, b.ToArray<double>(), batch, n, m, transpose: false);
        var y = FromHost(x, b.ShapeArray, a);
        if (!Recorder.Needs(a, b))
            return y;
        // Captured as values: the caller's broadcast views of A and B are gone by the time backward runs.
        bool needA = a.NeedsGrad;
        var (dtype, device, bShape) = (a.DType, a.Device, b.ShapeArray);
        return Recorder.Record(y, "solve", [a, b], [a, y], (g, s) =>
        {
            var gb = SolveStack("solve backward", s[0].ToArray<double>(), g.ToArray<double>(), batch, n, m, true);
            var gB = FromHost(gb, bShape, dtype, device);
            Tensor? gA = null;
            if (needA)
            {
                using var xt = Transpose(s[1], -2, -1);
                using var outer = MatMul(gB, xt);
                gA = MulScalar(outer, -1);
            }
            return [gA, gB];
        });
    }

    /// <summary>A⁻¹ of every matrix of <paramref name="a"/> [..., n, n]. Backward: −A⁻ᵀ·G·A⁻ᵀ.</summary>
    public static Tensor Inverse(Tensor a)
    {
        var (ad, batch, n) = SquareStack("inverse", a);
        var eye = new double[ad.Length];
        for (int k = 0; k < batch; k++)
        for (int i = 0; i < n; i++)
            eye[(long)k * n * n + i * n + i] = 1;
        var y = FromHost(SolveStack("inverse", ad, eye, batch, n, n, transpose: false), a.ShapeArray, a);
        if (!Recorder.Needs(a))
            return y;
        return Recorder.Record(y, "inverse", [a], [y], (g, s) =>
        {
            using var yt = Transpose(s[0], -2, -1);
            using var left = MatMul(yt, g);
            using var both = MatMul(left, yt);
            return [MulScalar(both, -1)];
        });
    }

    /// <summary>det(A) of every matrix of <paramref name="a"/> [..., n, n] (shape [...]), from its LU factors.
    /// Backward: the cofactor matrix (the adjugate's transpose, = det(A)·A⁻ᵀ where A is invertible) times g, so a
    /// singular matrix has its true gradient, never a NaN.</summary>
    public static Tensor Det(Tensor a)
    {
        var (ad, batch, n) = SquareStack("det", a);
        var det = new double[batch];
        var lu = (double[])ad.Clone();
        var piv = new int[n];
        for (int k = 0; k < batch; k++)
        {
            var m = lu.AsSpan(k * n * n, n * n);
            det[k] = HostFactorizations.Det(m, n, HostFactorizations.LuFactor(m, n, piv));
        }
        var y = FromHost(det, a.ShapeArray[..^2], a);
        if (!Recorder.Needs(a))
            return y;
        var (dtype, device, shape) = (a.DType, a.Device, a.ShapeArray); // values: the caller may drop a first
        return Recorder.Record(y, "det", [a], [a], (g, s) =>
        {
            var gv = g.ToArray<double>();
            var av = s[0].ToArray<double>();
            var ga = new double[av.Length];
            for (int k = 0; k < batch; k++)
                Cofactors(av.AsSpan(k * n * n, n * n), n, det[k], ga.AsSpan(k * n * n, n * n), gv[k]);
            return [FromHost(ga, shape, dtype, device)];
        });
    }

    /// <summary>The Cholesky factor of every symmetric positive-definite matrix of <paramref name="a"/> [..., n, n]
    /// (its lower triangle read): L with A = L·Lᵀ, or U = Lᵀ with <paramref name="upper"/>. Backward (PyTorch's):
    /// with M = tril(Lᵀ·gL) and Φ = (M + tril(M, −1)ᵀ)/2, gA = L⁻ᵀ·Φ·L⁻¹.</summary>
    public static Tensor Cholesky(Tensor a, bool upper = false)
    {
        var (ad, batch, n) = SquareStack("cholesky", a);
        for (int k = 0; k < batch; k++)
        {
            int info = HostFactorizations.Cholesky(ad.AsSpan(k * n * n, n * n), n);
            if (info != 0)
                throw new LinAlgException(
                    $"cholesky: matrix {k} of the batch is not positive-definite (its leading minor of order {info} "
                        + "is not): the factorisation could not be completed"
                );
        }
        var lower = FromHost(ad, a.ShapeArray, a);
        var y = upper ? lower.Replace(Transpose(lower, -2, -1).ContiguousOwned()) : lower;
        if (!Recorder.Needs(a))
            return y;
        return Recorder.Record(y, "cholesky", [a], [y], (g, s) =>
        {
            using var l = upper ? Transpose(s[0], -2, -1) : s[0].Alias();
            using var gl = upper ? Transpose(g, -2, -1) : g.Alias();
            using var lt = Transpose(l, -2, -1);
            using var ltg = MatMul(lt, gl);
            using var mLow = Tril(ltg);
            using var strict = Tril(mLow, -1);
            using var strictT = Transpose(strict, -2, -1);
            using var sum = Add(mLow, strictT);
            using var phi = MulScalar(sum, 0.5);
            using var linv = Inverse(l);
            using var linvT = Transpose(linv, -2, -1);
            using var left = MatMul(linvT, phi);
            return [MatMul(left, linv)];
        });
    }

    /// <summary>(float64 host copy, matrices, n) of a square-matrix stack, its dtype and shape checked.</summary>
    private static (double[] Data, int Batch, int N) SquareStack(string op, Tensor a)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (a.Rank < 2 || a.Shape[^1] != a.Shape[^2])
            throw new ShapeMismatchException(
                $"{op}: expects square matrices [..., n, n], got {Shapes.Format(a.Shape)}"
            );
        if (a.DType is not (DType.Float32 or DType.Float64))
            throw Unsupported(op, a.DType);
        if (a.Backend.Capturing)
            throw new InvalidOperationException(
                $"{op} factors its matrices on the host, which a graph capture cannot record; run it outside the capture"
            );
        int batch = 1;
        for (int d = 0; d < a.Rank - 2; d++)
            batch *= a.Shape[d];
        return (a.ToArray<double>(), batch, a.Shape[^1]);
    }

    /// <summary>X = A⁻¹·B (or A⁻ᵀ·B) for each matrix of the stack; B is n×m per matrix.</summary>
    private static double[] SolveStack(string op, double[] a, double[] b, int batch, int n, int m, bool transpose)
    {
        var lu = new double[n * n];
        var piv = new int[n];
        for (int k = 0; k < batch; k++)
        {
            var src = a.AsSpan(k * n * n, n * n);
            for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                lu[i * n + j] = transpose ? src[j * n + i] : src[i * n + j];
            if (HostFactorizations.LuFactor(lu, n, piv) == 0)
                throw new LinAlgException(
                    $"{op}: matrix {k} of the batch is singular (a zero pivot in its LU factorisation): it has no "
                        + "inverse"
                );
            HostFactorizations.LuSolve(lu, piv, n, b.AsSpan(k * n * m, n * m), m);
        }
        return b;
    }

    /// <summary>g·∂det/∂A into <paramref name="grad"/>: the cofactor matrix (each entry an (n−1)-minor's signed
    /// determinant) for matrices up to <see cref="CofactorOrder"/> and for singular ones, else g·det·A⁻ᵀ, which equals
    /// it but loses accuracy as A nears singularity. PyTorch 1.13 returns zeros at an exactly singular matrix; the
    /// cofactors are the derivative there.</summary>
    private static void Cofactors(ReadOnlySpan<double> a, int n, double det, Span<double> grad, double g)
    {
        if (n == 0)
            return;
        if (det != 0 && n > CofactorOrder)
        {
            var inv = new double[n * n];
            for (int i = 0; i < n; i++)
                inv[i * n + i] = 1;
            var lu = a.ToArray();
            var piv = new int[n];
            HostFactorizations.LuFactor(lu, n, piv);
            HostFactorizations.LuSolve(lu, piv, n, inv, n);
            for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                grad[i * n + j] = g * det * inv[j * n + i];
            return;
        }
        var minor = new double[(n - 1) * (n - 1)];
        var mpiv = new int[Math.Max(n - 1, 1)];
        for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
        {
            int w = 0;
            for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++)
                if (r != i && c != j)
                    minor[w++] = a[r * n + c];
            double d =
                n == 1 ? 1 : HostFactorizations.Det(minor, n - 1, HostFactorizations.LuFactor(minor, n - 1, mpiv));
            grad[i * n + j] = g * ((i + j) % 2 == 0 ? d : -d);
        }
    }

    /// <summary>Up to this order det's gradient is the cofactor expansion (O(n⁵): 33K multiply-adds at 8).</summary>
    private const int CofactorOrder = 8;

    /// <summary>A float64 host result as a tensor of <paramref name="like"/>'s dtype on its device.</summary>
    private static Tensor FromHost(double[] data, int[] shape, Tensor like) =>
        FromHost(data, shape, like.DType, like.Device);

    /// <summary>A float64 host result as a <paramref name="dtype"/> tensor on <paramref name="device"/>.</summary>
    private static Tensor FromHost(double[] data, int[] shape, DType dtype, Device device)
    {
        var t = Tensor.FromArray(data, data.Length);
        if (shape.Length != 1)
            t = t.Replace(Reshape(t, shape)); // a 0-d result (det of one matrix) too
        if (dtype != DType.Float64)
            t = t.Replace(ToDType(t, dtype, false));
        if (device != Device.Cpu)
            t = t.Replace(MoveNoGrad(t, device));
        return t;
    }
}
