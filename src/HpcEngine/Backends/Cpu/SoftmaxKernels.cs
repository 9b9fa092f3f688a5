using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

/// <summary>Softmax and log-softmax over the rows of a contiguous [rows, n] matrix. Each row is read once into L1
/// (n = 4096 floats is 16 KB), so the max, exp, sum and scale passes run from cache: the op is bound by one read and
/// one write of memory. Rows are split across threads.</summary>
internal static unsafe class SoftmaxKernels
{
    public static void Forward<T>(T* x, T* y, int rows, int n, bool log)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CpuThreads.For(rows, (long)rows * n, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var xs = new ReadOnlySpan<T>(x + (long)r * n, n);
                var ys = new Span<T>(y + (long)r * n, n);
                if (n == 0)
                    continue;
                T m = TensorPrimitives.Max(xs);
                if (T.IsNaN(m))
                {
                    ys.Fill(T.NaN);
                    continue;
                }
                if (T.IsNegativeInfinity(m))
                    m = T.Zero; // an all -inf row gives NaN like PyTorch, not a crash
                if (typeof(T) == typeof(float))
                {
                    // One fused pass: exp(x − max) and its sum, single precision (see FastExp).
                    float* xr = (float*)(x + (long)r * n),
                        yr = (float*)(y + (long)r * n);
                    float fm = float.CreateTruncating(m);
                    if (!log)
                    {
                        float sum = FastExp.ExpShiftedSum(xr, yr, n, fm);
                        TensorPrimitives.Multiply(new ReadOnlySpan<float>(yr, n), 1f / sum, new Span<float>(yr, n));
                    }
                    else
                    {
                        float sum = FastExp.ExpShiftedSum(xr, null, n, fm);
                        TensorPrimitives.Subtract(
                            new ReadOnlySpan<float>(xr, n),
                            fm + MathF.Log(sum),
                            new Span<float>(yr, n)
                        );
                    }
                    continue;
                }
                TensorPrimitives.Subtract(xs, m, ys);
                if (!log)
                {
                    TensorPrimitives.Exp(ys, ys);
                    T sum = TensorPrimitives.Sum<T>(ys);
                    TensorPrimitives.Multiply(ys, T.One / sum, ys);
                }
                else
                {
                    var tmp = ArrayPool<T>.Shared.Rent(n);
                    var ts = tmp.AsSpan(0, n);
                    TensorPrimitives.Exp<T>(ys, ts);
                    T lse = T.Log(TensorPrimitives.Sum<T>(ts));
                    ArrayPool<T>.Shared.Return(tmp);
                    TensorPrimitives.Subtract(ys, lse, ys);
                }
            }
        });
    }

    /// <summary>Softmax: dx = y ⊙ (g − Σ g⊙y). Log-softmax: dx = g − exp(y) Σ g.</summary>
    public static void Backward<T>(T* y, T* g, T* dx, int rows, int n, bool log)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        CpuThreads.For(rows, (long)rows * n, (s, e) =>
        {
            for (int r = s; r < e; r++)
            {
                var ys = new ReadOnlySpan<T>(y + (long)r * n, n);
                var gs = new ReadOnlySpan<T>(g + (long)r * n, n);
                var ds = new Span<T>(dx + (long)r * n, n);
                if (!log)
                {
                    T dot = TensorPrimitives.Dot(gs, ys);
                    TensorPrimitives.Subtract(gs, dot, ds);
                    TensorPrimitives.Multiply<T>(ds, ys, ds);
                }
                else
                {
                    T sum = TensorPrimitives.Sum(gs);
                    TensorPrimitives.Exp(ys, ds);
                    TensorPrimitives.Multiply<T>(ds, sum, ds);
                    TensorPrimitives.Subtract<T>(gs, ds, ds);
                }
            }
        });
    }
}

/// <summary>Layer norm over the last D elements of each row: y = (x − μ)·rstd·w + b, saving μ and rstd for backward.
/// Backward per row, with x̂ = (x − μ)·rstd and ĝ = g·w: dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)); dw = Σ_rows g ⊙
/// x̂; db = Σ_rows g (per-thread partial sums, then added).</summary>
internal static unsafe class LayerNormKernels
{
    public static void Forward<T>(T* x, T* w, T* b, T* y, T* mean, T* rstd, int rows, int d, double eps)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T e = T.CreateTruncating(eps),
            dn = T.CreateTruncating(d);
        CpuThreads.For(rows, (long)rows * d, (s, en) =>
        {
            for (int r = s; r < en; r++)
            {
                var xs = new ReadOnlySpan<T>(x + (long)r * d, d);
                var ys = new Span<T>(y + (long)r * d, d);
                T mu = TensorPrimitives.Sum(xs) / dn;
                TensorPrimitives.Subtract(xs, mu, ys);
                T var = TensorPrimitives.SumOfSquares<T>(ys) / dn;
                T rs = T.One / T.Sqrt(var + e);
                mean[r] = mu;
                rstd[r] = rs;
                TensorPrimitives.Multiply<T>(ys, rs, ys);
                if (w != null && b != null)
                    TensorPrimitives.FusedMultiplyAdd<T>(ys, new ReadOnlySpan<T>(w, d), new ReadOnlySpan<T>(b, d), ys);
                else if (w != null)
                    TensorPrimitives.Multiply<T>(ys, new ReadOnlySpan<T>(w, d), ys);
                else if (b != null)
                    TensorPrimitives.Add<T>(ys, new ReadOnlySpan<T>(b, d), ys);
            }
        });
    }

    public static void Backward<T>(T* x, T* w, T* mean, T* rstd, T* g, T* dx, T* dw, T* db, int rows, int d)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int threads = Math.Max(1, Math.Min(CpuThreads.Count, rows));
        var partW = new T[threads][];
        var partB = new T[threads][];
        T dn = T.CreateTruncating(d);
        int chunk = (rows + threads - 1) / threads;
        ForkJoinPool.Shared.Run(threads, t =>
        {
            int s = t * chunk,
                en = Math.Min(rows, s + chunk);
            var pw = partW[t] = new T[d];
            var pb = partB[t] = new T[d];
            var xhat = new T[d];
            var gh = new T[d];
            for (int r = s; r < en; r++)
            {
                var xs = new ReadOnlySpan<T>(x + (long)r * d, d);
                var gs = new ReadOnlySpan<T>(g + (long)r * d, d);
                TensorPrimitives.Subtract(xs, mean[r], xhat);
                TensorPrimitives.Multiply<T>(xhat, rstd[r], xhat);
                if (dw != null)
                    TensorPrimitives.FusedMultiplyAdd<T>(gs, xhat, pw, pw);
                if (db != null)
                    TensorPrimitives.Add<T>(pb, gs, pb);
                if (w != null)
                    TensorPrimitives.Multiply<T>(gs, new ReadOnlySpan<T>(w, d), gh);
                else
                    gs.CopyTo(gh);
                T meanG = TensorPrimitives.Sum<T>(gh) / dn;
                T meanGX = TensorPrimitives.Dot<T>(gh, xhat) / dn;
                var ds = new Span<T>(dx + (long)r * d, d);
                // ds = rstd * (gh - meanG - xhat * meanGX)
                TensorPrimitives.Multiply<T>(xhat, -meanGX, ds);
                TensorPrimitives.Add<T>(ds, gh, ds);
                TensorPrimitives.Add<T>(ds, -meanG, ds);
                TensorPrimitives.Multiply<T>(ds, rstd[r], ds);
            }
        });
        if (dw != null)
        {
            var dws = new Span<T>(dw, d);
            dws.Clear();
            foreach (var p in partW)
                if (p != null)
                    TensorPrimitives.Add<T>(dws, p, dws);
        }
        if (db != null)
        {
            var dbs = new Span<T>(db, d);
            dbs.Clear();
            foreach (var p in partB)
                if (p != null)
                    TensorPrimitives.Add<T>(dbs, p, dbs);
        }
    }
}
