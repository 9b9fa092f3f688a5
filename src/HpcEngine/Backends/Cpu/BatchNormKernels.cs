using System.Numerics;
using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

/// <summary>Batch norm over x viewed as [N, C, L] (L = H·W, or 1 for [N, C]); channels split across threads.
/// Training forward computes each channel's mean and biased variance over N·L values in two passes, then
/// y = (x − μ)·rstd·w + b. Backward, with x̂ = (x − μ)·rstd and m = N·L:
///   training: dx = w·rstd·(g − mean(g) − x̂·mean(g·x̂));   eval (fixed statistics): dx = w·rstd·g;
///   dw = Σ g·x̂; db = Σ g.</summary>
internal static unsafe class BatchNormKernels
{
    public static void Forward<T>(
        T* x,
        T* y,
        int n,
        int c,
        int l,
        T* w,
        T* b,
        T* mean,
        T* rstd,
        bool useBatchStats,
        double eps
    )
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T e = T.CreateTruncating(eps),
            m = T.CreateTruncating((long)n * l);
        CpuThreads.For(c, (long)n * c * l * 3, (c0, c1) =>
        {
            for (int ch = c0; ch < c1; ch++)
            {
                T mu,
                    rs;
                if (useBatchStats)
                {
                    T sum = T.Zero;
                    for (int i = 0; i < n; i++)
                        sum += TensorPrimitives.Sum(new ReadOnlySpan<T>(x + ((long)i * c + ch) * l, l));
                    mu = sum / m;
                    T sq = T.Zero;
                    for (int i = 0; i < n; i++)
                        sq += SquaredDeviations(new ReadOnlySpan<T>(x + ((long)i * c + ch) * l, l), mu);
                    rs = T.One / T.Sqrt(sq / m + e);
                    mean[ch] = mu;
                    rstd[ch] = rs;
                }
                else
                {
                    mu = mean[ch];
                    rs = rstd[ch];
                }
                T scale = rs * (w != null ? w[ch] : T.One),
                    shift = (b != null ? b[ch] : T.Zero) - mu * scale;
                for (int i = 0; i < n; i++)
                {
                    long o = ((long)i * c + ch) * l;
                    Affine(x + o, scale, shift, y + o, l);
                }
            }
        });
    }

    public static void Backward<T>(
        T* x,
        T* g,
        T* dx,
        T* dw,
        T* db,
        int n,
        int c,
        int l,
        T* w,
        T* mean,
        T* rstd,
        bool batchStats
    )
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T m = T.CreateTruncating((long)n * l);
        CpuThreads.For(c, (long)n * c * l * 3, (c0, c1) =>
        {
            for (int ch = c0; ch < c1; ch++)
            {
                T mu = mean[ch],
                    rs = rstd[ch];
                T sumG = T.Zero,
                    sumGX = T.Zero;
                for (int i = 0; i < n; i++)
                {
                    long o = ((long)i * c + ch) * l;
                    var gs = new ReadOnlySpan<T>(g + o, l);
                    var xs = new ReadOnlySpan<T>(x + o, l);
                    sumG += TensorPrimitives.Sum(gs);
                    // Σ g·(x − μ) = Σ g·x − μ Σ g
                    sumGX += TensorPrimitives.Dot(gs, xs);
                }
                T sumGXhat = (sumGX - mu * sumG) * rs;
                if (dw != null)
                    dw[ch] = sumGXhat;
                if (db != null)
                    db[ch] = sumG;
                if (dx == null)
                    continue;
                T wc = w != null ? w[ch] : T.One;
                T k = wc * rs;
                if (!batchStats)
                {
                    for (int i = 0; i < n; i++)
                    {
                        long o = ((long)i * c + ch) * l;
                        TensorPrimitives.Multiply(new ReadOnlySpan<T>(g + o, l), k, new Span<T>(dx + o, l));
                    }
                    continue;
                }
                // dx = k·(g − mean(g) − x̂·mean(g·x̂)), x̂ = (x − μ)·rs  →  dx = k·g + a·x + c0 with
                // a = −k·rs·mean(g·x̂), c0 = −k·mean(g) + k·rs·μ·mean(g·x̂)
                T meanG = sumG / m,
                    meanGX = sumGXhat / m;
                T a = -k * rs * meanGX,
                    c0c = -k * meanG + k * rs * mu * meanGX;
                for (int i = 0; i < n; i++)
                {
                    long o = ((long)i * c + ch) * l;
                    Affine2(x + o, a, g + o, k, c0c, dx + o, l);
                }
            }
        });
    }

    /// <summary>Σ (v − μ)² over a row, vectorised with two accumulators (the scalar loop was one long chain of
    /// dependent adds: half the forward's time).</summary>
    private static T SquaredDeviations<T>(ReadOnlySpan<T> row, T mu)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0,
            w = Vector<T>.Count;
        T sum = T.Zero;
        if (Vector.IsHardwareAccelerated && row.Length >= 2 * w)
        {
            var m = new Vector<T>(mu);
            Vector<T> s0 = Vector<T>.Zero,
                s1 = Vector<T>.Zero;
            for (; i + 2 * w <= row.Length; i += 2 * w)
            {
                var d0 = new Vector<T>(row[i..]) - m;
                var d1 = new Vector<T>(row[(i + w)..]) - m;
                s0 += d0 * d0;
                s1 += d1 * d1;
            }
            sum = Vector.Sum(s0 + s1);
        }
        for (; i < row.Length; i++)
        {
            T d = row[i] - mu;
            sum += d * d;
        }
        return sum;
    }

    /// <summary>y[i] := a·x[i] + c, one pass.</summary>
    private static void Affine<T>(T* x, T a, T c, T* y, int l)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0,
            w = Vector<T>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<T> va = new(a),
                vc = new(c);
            for (; i + w <= l; i += w)
                (va * Vector.Load(x + i) + vc).Store(y + i);
        }
        for (; i < l; i++)
            y[i] = a * x[i] + c;
    }

    /// <summary>d[i] := a·x[i] + k·g[i] + c, one pass.</summary>
    private static void Affine2<T>(T* x, T a, T* g, T k, T c, T* d, int l)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int i = 0,
            w = Vector<T>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<T> va = new(a),
                vk = new(k),
                vc = new(c);
            for (; i + w <= l; i += w)
            {
                var r = va * Vector.Load(x + i) + vk * Vector.Load(g + i) + vc;
                r.Store(d + i);
            }
        }
        for (; i < l; i++)
            d[i] = a * x[i] + k * g[i] + c;
    }
}
