using System.Globalization;
using HpcEngine.Distributed;

namespace HpcEngine.Compression;

/// <summary>PowerSGD (Vogels, Karimireddy and Jaggi, 2019): each gradient matrix M (n×m; a conv kernel is viewed as
/// out × in·kh·kw) is approximated by a rank-r product P Qᵀ found by one step of subspace iteration, warm-started from
/// the previous step's Q:
/// <code>
///   M ← M + e                    (error feedback)
///   P = M Q;   allreduce-average P;   P ← orthonormalise(P)
///   Q = Mᵀ P;  allreduce-average Q
///   M̃ = P Qᵀ;  e ← M − M̃        (what the approximation missed is sent later)
/// </code>
/// Only r(n + m) floats per matrix cross the network instead of nm. Vectors (biases, norm scales) and matrices for
/// which r(n + m) ≥ nm are averaged uncompressed, packed into the second allreduce. Both rounds are allreduces —
/// P and Q are dense and sum correctly — and run on the calling thread, since the second depends on the first.
/// The state to checkpoint is every bucket's residual and Q.</summary>
public sealed class PowerSgdCodec : GradientCodec
{
    private readonly ulong _seed;
    private readonly Dictionary<int, float[]> _q = new();

    /// <summary>PowerSGD of rank <paramref name="rank"/>; <paramref name="seed"/> draws the initial Q, identically on
    /// every rank.</summary>
    public PowerSgdCodec(int rank, ulong seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rank);
        Rank = rank;
        _seed = seed;
    }

    /// <summary>The rank r of the approximation.</summary>
    public int Rank { get; }

    /// <inheritdoc/>
    public override string Name => $"powersgd:{Rank.ToString(CultureInfo.InvariantCulture)}";

    /// <inheritdoc/>
    public override bool ErrorFeedback => true;

    /// <summary>One matrix of a bucket: where it starts in the flat vector and its shape as a matrix.</summary>
    private readonly record struct Block(int Offset, int Rows, int Cols, bool Compressed);

    /// <summary>Which tensors of a bucket are compressed: those with two or more dimensions for which the factors are
    /// smaller than the matrix.</summary>
    private Block[] Layout(IReadOnlyList<int[]> shapes, int total)
    {
        var blocks = new Block[shapes.Count];
        int at = 0;
        for (int i = 0; i < shapes.Count; i++)
        {
            var s = shapes[i];
            int n = 1;
            foreach (int d in s)
                n *= d;
            int rows = s.Length >= 2 ? s[0] : n,
                cols = s.Length >= 2 && rows > 0 ? n / rows : 1;
            blocks[i] = new Block(at, rows, cols, s.Length >= 2 && (long)Rank * (rows + cols) < (long)rows * cols);
            at += n;
        }
        if (at != total)
            throw new ArgumentException($"{Name}: the shapes cover {at} elements but the bucket has {total}");
        return blocks;
    }

    /// <inheritdoc/>
    public override CodecExchange Exchange(Tensor flat, IReadOnlyList<int[]> shapes, IProcessGroup group, int key)
    {
        ArgumentNullException.ThrowIfNull(flat);
        ArgumentNullException.ThrowIfNull(shapes);
        ArgumentNullException.ThrowIfNull(group);
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        double waiting = 0;
        int total = flat.NumEl,
            r = Rank;
        var blocks = Layout(shapes, total);
        var m = flat.ToArray<float>();
        var e = Residual(key, total);
        for (int i = 0; i < total; i++)
            m[i] += e[i];

        int pLen = 0,
            qLen = 0,
            plain = 0;
        foreach (var b in blocks)
            if (b.Compressed)
            {
                pLen += b.Rows * r;
                qLen += b.Cols * r;
            }
            else
                plain += b.Rows * b.Cols;
        var q = WarmStart(key, qLen);

        // Round 1: P = M Q for every matrix, averaged.
        var p = new float[pLen];
        for (int bi = 0, po = 0, qo = 0; bi < blocks.Length; bi++)
        {
            var b = blocks[bi];
            if (!b.Compressed)
                continue;
            MatMul(
                m.AsSpan(b.Offset, b.Rows * b.Cols),
                b.Rows,
                b.Cols,
                q.AsSpan(qo, b.Cols * r),
                r,
                p.AsSpan(po, b.Rows * r)
            );
            po += b.Rows * r;
            qo += b.Cols * r;
        }
        waiting += AverageInPlace(p, group);

        // Round 2: Q = Mᵀ P̂ with P̂ orthonormal, and the uncompressed tensors, averaged together.
        var second = new float[qLen + plain];
        for (int bi = 0, po = 0, qo = 0, uo = qLen; bi < blocks.Length; bi++)
        {
            var b = blocks[bi];
            if (!b.Compressed)
            {
                m.AsSpan(b.Offset, b.Rows * b.Cols).CopyTo(second.AsSpan(uo));
                uo += b.Rows * b.Cols;
                continue;
            }
            Orthonormalise(p.AsSpan(po, b.Rows * r), b.Rows, r);
            MatMulTransposed(
                m.AsSpan(b.Offset, b.Rows * b.Cols),
                b.Rows,
                b.Cols,
                p.AsSpan(po, b.Rows * r),
                r,
                second.AsSpan(qo, b.Cols * r)
            );
            po += b.Rows * r;
            qo += b.Cols * r;
        }
        waiting += AverageInPlace(second, group);
        second.AsSpan(0, qLen).CopyTo(q);

        // Decompress: M̃ = P̂ Qᵀ; the residual keeps what this rank's (gradient + old residual) had that M̃ lacks.
        var output = new float[total];
        for (int bi = 0, po = 0, qo = 0, uo = qLen; bi < blocks.Length; bi++)
        {
            var b = blocks[bi];
            var dst = output.AsSpan(b.Offset, b.Rows * b.Cols);
            if (!b.Compressed)
            {
                second.AsSpan(uo, dst.Length).CopyTo(dst);
                uo += dst.Length;
                e.AsSpan(b.Offset, dst.Length).Clear();
                continue;
            }
            OuterProduct(p.AsSpan(po, b.Rows * r), q.AsSpan(qo, b.Cols * r), b.Rows, b.Cols, r, dst);
            for (int i = 0; i < dst.Length; i++)
                e[b.Offset + i] = m[b.Offset + i] - dst[i];
            po += b.Rows * r;
            qo += b.Cols * r;
        }
        using (var avg = Tensor.FromArray(output))
            Ops.CopyInto(flat, avg);
        CompressSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds - waiting;
        return new CodecExchange(Work.Done, 4L * (pLen + second.Length));
    }

    /// <summary>The bucket's Q from the previous step, or a fresh standard-normal one (the same on every rank: drawn
    /// from the shared seed and the bucket key).</summary>
    private float[] WarmStart(int key, int length)
    {
        if (_q.TryGetValue(key, out var q) && q.Length == length)
            return q;
        q = new float[length];
        ulong stream = _seed ^ (0x9E3779B97F4A7C15UL * (ulong)(key + 1));
        for (int i = 0; i < length; i++)
        {
            // Box–Muller on two uniforms in (0, 1].
            double u1 = 1.0 - Philox.ToUniformDouble(Philox.At(stream, (ulong)i, 0));
            double u2 = Philox.ToUniformDouble(Philox.At(stream, (ulong)i, 1));
            q[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return _q[key] = q;
    }

    /// <summary>Averages <paramref name="values"/> across the group; returns the seconds it took.</summary>
    private static double AverageInPlace(float[] values, IProcessGroup group)
    {
        if (values.Length == 0)
            return 0;
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        using var t = Tensor.FromArray(values);
        group.AllReduce(t, new AllReduceOptions { Op = ReduceOp.Avg }).Wait();
        t.AsReadOnlySpan<float>().CopyTo(values);
        return System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>out[rows×r] = a[rows×cols] · b[cols×r] (the engine's SGEMM).</summary>
    private static void MatMul(
        ReadOnlySpan<float> a,
        int rows,
        int cols,
        ReadOnlySpan<float> b,
        int r,
        Span<float> output
    ) => Gemm(a, rows, cols, transposeA: false, b, cols, r, transposeB: false, output);

    /// <summary>out[cols×r] = aᵀ · p, for a[rows×cols] and p[rows×r].</summary>
    private static void MatMulTransposed(
        ReadOnlySpan<float> a,
        int rows,
        int cols,
        ReadOnlySpan<float> p,
        int r,
        Span<float> output
    ) => Gemm(a, rows, cols, transposeA: true, p, rows, r, transposeB: false, output);

    /// <summary>out[rows×cols] = p[rows×r] · q[cols×r]ᵀ.</summary>
    private static void OuterProduct(
        ReadOnlySpan<float> p,
        ReadOnlySpan<float> q,
        int rows,
        int cols,
        int r,
        Span<float> output
    ) => Gemm(p, rows, r, transposeA: false, q, cols, r, transposeB: true, output);

    private static void Gemm(
        ReadOnlySpan<float> a,
        int ar,
        int ac,
        bool transposeA,
        ReadOnlySpan<float> b,
        int br,
        int bc,
        bool transposeB,
        Span<float> output
    )
    {
        using var noGrad = Autograd.GradMode.NoGrad();
        using var ta = Tensor.FromArray(a.ToArray(), ar, ac);
        using var tb = Tensor.FromArray(b.ToArray(), br, bc);
        using var opA = transposeA ? ta.Transpose(0, 1) : null;
        using var opB = transposeB ? tb.Transpose(0, 1) : null;
        using var c = (opA ?? ta).MatMul(opB ?? tb);
        using var contiguous = c.Contiguous();
        contiguous.AsReadOnlySpan<float>().CopyTo(output);
    }

    /// <summary>Gram–Schmidt on the r columns of p[rows×r]; a column that vanishes stays (near) zero rather than
    /// dividing by zero (the 1e-8 guard PyTorch's hook uses).</summary>
    private static void Orthonormalise(Span<float> p, int rows, int r)
    {
        for (int k = 0; k < r; k++)
        {
            for (int j = 0; j < k; j++)
            {
                double dot = 0;
                for (int i = 0; i < rows; i++)
                    dot += p[i * r + k] * p[i * r + j];
                for (int i = 0; i < rows; i++)
                    p[i * r + k] -= (float)(dot * p[i * r + j]);
            }
            double norm = 0;
            for (int i = 0; i < rows; i++)
                norm += p[i * r + k] * (double)p[i * r + k];
            double inv = 1 / (Math.Sqrt(norm) + 1e-8);
            for (int i = 0; i < rows; i++)
                p[i * r + k] = (float)(p[i * r + k] * inv);
        }
    }

    /// <inheritdoc/>
    public override Dictionary<string, Tensor> StateDict()
    {
        var d = base.StateDict();
        foreach (var (k, q) in _q)
            d[$"q.{k.ToString(CultureInfo.InvariantCulture)}"] = Tensor.FromArray((float[])q.Clone()).DetachFromScope();
        return d;
    }

    /// <inheritdoc/>
    protected override void ClearExtraState() => _q.Clear();

    /// <inheritdoc/>
    protected override bool LoadExtraEntry(string key, Tensor value)
    {
        if (
            !key.StartsWith("q.", StringComparison.Ordinal)
            || !int.TryParse(key[2..], CultureInfo.InvariantCulture, out int bucket)
        )
            return false;
        _q[bucket] = value.ToArray<float>();
        return true;
    }
}
