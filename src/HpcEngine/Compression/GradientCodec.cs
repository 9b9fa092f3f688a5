using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;

namespace HpcEngine.Compression;

/// <summary>A compressed gradient as it goes on the wire: exactly <see cref="Bytes"/>.Length bytes.</summary>
public sealed record EncodedGradient(byte[] Bytes, int Count)
{
    /// <summary>Bytes on the wire.</summary>
    public int WireBytes => Bytes.Length;
}

/// <summary>A gradient codec: encode a float32 vector into wire bytes and decode it back, with whatever state it keeps
/// between steps (error-feedback residuals) keyed by a bucket id, saved and restored by checkpoints.
/// <see cref="Summable"/> says whether encoded messages may be summed element-wise by an allreduce (dense formats such
/// as fp16); the others (sparse, packed) must be exchanged by allgather and decoded one by one.</summary>
public abstract class GradientCodec
{
    private readonly Dictionary<int, float[]> _residuals = new();

    /// <summary>"none", "fp16", "topk:0.01" ...</summary>
    public abstract string Name { get; }

    /// <summary>True when encoded messages can be reduced as dense arrays of the codec's element type.</summary>
    public virtual bool Summable => false;

    /// <summary>Whether the codec keeps what it did not send and adds it to the next step's input.</summary>
    public virtual bool ErrorFeedback => false;

    /// <summary>Encodes <paramref name="gradient"/> for bucket <paramref name="key"/>. With error feedback the residual
    /// of the previous step is added first and what is not sent becomes the new residual, so nothing is lost, only
    /// delayed: decode(encode(g)) + residual_new = g + residual_old, exactly.</summary>
    public EncodedGradient Encode(ReadOnlySpan<float> gradient, int key = 0)
    {
        if (!ErrorFeedback) return EncodeCore(gradient);
        var r = Residual(key, gradient.Length);
        var v = new float[gradient.Length];
        for (int i = 0; i < v.Length; i++) v[i] = gradient[i] + r[i];
        var msg = EncodeCore(v);
        var sent = new float[v.Length];
        Decode(msg, sent);
        for (int i = 0; i < v.Length; i++) r[i] = v[i] - sent[i];
        return msg;
    }

    /// <summary>Writes the dense values a message stands for into <paramref name="output"/> (overwriting it).</summary>
    public abstract void Decode(EncodedGradient message, Span<float> output);

    protected abstract EncodedGradient EncodeCore(ReadOnlySpan<float> values);

    private float[] Residual(int key, int n)
    {
        if (!_residuals.TryGetValue(key, out var r) || r.Length != n) _residuals[key] = r = new float[n];
        return r;
    }

    /// <summary>L2 norm of the residual of a bucket (0 without error feedback).</summary>
    public double ResidualNorm(int key = 0) =>
        _residuals.TryGetValue(key, out var r) ? Math.Sqrt(r.Sum(v => (double)v * v)) : 0;

    /// <summary>The codec's state as tensors ("residual.{key}"), for checkpoints.</summary>
    public virtual Dictionary<string, Tensor> StateDict() =>
        _residuals.ToDictionary(kv => $"residual.{kv.Key.ToString(CultureInfo.InvariantCulture)}", kv => Tensor.FromArray((float[])kv.Value.Clone()).DetachFromScope());

    /// <summary>Restores <see cref="StateDict"/> output.</summary>
    public virtual void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        _residuals.Clear();
        foreach (var (k, t) in state)
        {
            if (!k.StartsWith("residual.", StringComparison.Ordinal) || !int.TryParse(k["residual.".Length..], CultureInfo.InvariantCulture, out int key))
                throw new InvalidOperationException($"codec {Name}: unexpected state entry '{k}'");
            _residuals[key] = t.ToArray<float>();
        }
    }

    /// <summary>Builds a codec by name: none, fp16, bf16, topk:F, randomk:F, int8, sign.</summary>
    public static GradientCodec Create(string spec, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var p = spec.Split(':', 2);
        double Fraction() => p.Length == 2 && double.TryParse(p[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && f > 0 && f <= 1
            ? f : throw new ArgumentException($"codec '{spec}' needs a fraction in (0, 1], e.g. {p[0]}:0.01");
        return p[0] switch
        {
            "none" => new NoneCodec(),
            "fp16" => new HalfCodec(bf16: false),
            "bf16" => new HalfCodec(bf16: true),
            "topk" => new TopKCodec(Fraction()),
            "randomk" => new RandomKCodec(Fraction(), seed),
            "int8" or "qsgd" => new Int8Codec(seed),
            "sign" => new SignCodec(),
            _ => throw new ArgumentException($"unknown codec '{spec}': use none, fp16, bf16, topk:F, randomk:F, int8 or sign"),
        };
    }
}

/// <summary>float32 as is: 4 bytes per element.</summary>
public sealed class NoneCodec : GradientCodec
{
    public override string Name => "none";
    public override bool Summable => true;

    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values) => new(MemoryMarshal.AsBytes(values).ToArray(), values.Length);

    public override void Decode(EncodedGradient message, Span<float> output) =>
        MemoryMarshal.Cast<byte, float>(message.Bytes.AsSpan()).CopyTo(output);
}

/// <summary>fp16 or bf16 (round to nearest even): 2 bytes per element, summable (sums accumulate in fp32 on the way).</summary>
public sealed class HalfCodec(bool bf16) : GradientCodec
{
    public override string Name => bf16 ? "bf16" : "fp16";
    public override bool Summable => true;

    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values)
    {
        var b = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2 * i), bf16 ? BFloat16Bits.FromSingle(values[i]) : BitConverter.HalfToUInt16Bits((Half)values[i]));
        return new EncodedGradient(b, values.Length);
    }

    public override void Decode(EncodedGradient message, Span<float> output)
    {
        for (int i = 0; i < message.Count; i++)
        {
            ushort u = BinaryPrimitives.ReadUInt16LittleEndian(message.Bytes.AsSpan(2 * i));
            output[i] = bf16 ? BFloat16Bits.ToSingle(u) : (float)BitConverter.UInt16BitsToHalf(u);
        }
    }
}

/// <summary>Sparse message: k (int32 index, float32 value) pairs after a 4-byte count — 4 + 8k bytes.</summary>
public abstract class SparseCodec(double fraction) : GradientCodec
{
    public double Fraction { get; } = fraction;
    public override bool ErrorFeedback => true;

    protected int K(int n) => n == 0 ? 0 : Math.Max(1, (int)Math.Ceiling(Fraction * n));

    protected static EncodedGradient Pack(ReadOnlySpan<float> values, int[] indices)
    {
        var b = new byte[4 + 8 * indices.Length];
        BinaryPrimitives.WriteInt32LittleEndian(b, indices.Length);
        for (int j = 0; j < indices.Length; j++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(4 + 8 * j), indices[j]);
            BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(8 + 8 * j), values[indices[j]]);
        }
        return new EncodedGradient(b, values.Length);
    }

    public override void Decode(EncodedGradient message, Span<float> output)
    {
        output[..message.Count].Clear();
        int k = BinaryPrimitives.ReadInt32LittleEndian(message.Bytes);
        for (int j = 0; j < k; j++)
        {
            int i = BinaryPrimitives.ReadInt32LittleEndian(message.Bytes.AsSpan(4 + 8 * j));
            if ((uint)i >= (uint)message.Count) throw new InvalidDataException($"{Name}: index {i} outside a gradient of {message.Count} elements");
            output[i] = BinaryPrimitives.ReadSingleLittleEndian(message.Bytes.AsSpan(8 + 8 * j));
        }
    }
}

/// <summary>Top-k sparsification (Aji and Heafield 2017; Lin et al. 2018) with error feedback: the k = ⌈fraction·n⌉
/// entries of largest magnitude are sent, the rest kept as residual.</summary>
public sealed class TopKCodec(double fraction) : SparseCodec(fraction)
{
    public override string Name => $"topk:{Fraction.ToString(CultureInfo.InvariantCulture)}";

    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values)
    {
        int n = values.Length, k = K(n);
        if (k == 0) return Pack(values, []);
        // The k-th largest magnitude by quickselect (average O(n), not a full sort), then every index above it and
        // as many at it as k still needs, in index order (deterministic for ties).
        var mags = new float[n];
        for (int i = 0; i < n; i++) mags[i] = Math.Abs(values[i]);
        float threshold = Select(mags, n - k);
        var idx = new int[k];
        int c = 0;
        for (int i = 0; i < n && c < k; i++) if (Math.Abs(values[i]) > threshold) idx[c++] = i;
        for (int i = 0; i < n && c < k; i++) if (Math.Abs(values[i]) == threshold) idx[c++] = i;
        Array.Sort(idx);
        return Pack(values, idx);
    }

    /// <summary>The element that would sit at <paramref name="rank"/> if <paramref name="a"/> were sorted ascending
    /// (Hoare's quickselect with a middle pivot; reorders <paramref name="a"/>).</summary>
    private static float Select(float[] a, int rank)
    {
        int lo = 0, hi = a.Length - 1;
        while (lo < hi)
        {
            float pivot = a[lo + (hi - lo) / 2];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (a[i] < pivot) i++;
                while (a[j] > pivot) j--;
                if (i <= j) { (a[i], a[j]) = (a[j], a[i]); i++; j--; }
            }
            if (rank <= j) hi = j;
            else if (rank >= i) lo = i;
            else return a[rank];
        }
        return a[rank];
    }
}

/// <summary>Random-k sparsification with error feedback: k indices drawn without replacement from a seeded stream
/// (all ranks draw the same indices for the same step, so the messages could even be summed).</summary>
public sealed class RandomKCodec(double fraction, ulong seed) : SparseCodec(fraction)
{
    private long _calls;
    public override string Name => $"randomk:{Fraction.ToString(CultureInfo.InvariantCulture)}";

    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values)
    {
        int k = K(values.Length);
        var perm = Data.Sampler.Permutation(values.Length, shuffle: true, seed, (int)(_calls++ % int.MaxValue));
        var idx = perm[..k];
        Array.Sort(idx);
        return Pack(values, idx);
    }
}

/// <summary>8-bit stochastic quantisation (QSGD, Alistarh et al. 2017, s = 127 levels): q_i = round_stochastic(v_i /
/// max|v| · 127), unbiased (E[decode] = v); a float32 scale then one signed byte per element — 4 + n bytes.</summary>
public sealed class Int8Codec(ulong seed) : GradientCodec
{
    private ulong _counter;
    public override string Name => "int8";

    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values)
    {
        var b = new byte[4 + values.Length];
        float scale = 0;
        foreach (var v in values) scale = Math.Max(scale, Math.Abs(v));
        BinaryPrimitives.WriteSingleLittleEndian(b, scale);
        ulong block = _counter;
        _counter += (ulong)(values.Length + 3) / 4;
        for (int i = 0; i < values.Length; i++)
        {
            if (scale == 0) { b[4 + i] = 0; continue; }
            double x = values[i] / scale * 127;
            double lo = Math.Floor(x);
            double u = Philox.ToUniformDouble(Philox.At(seed, block + (ulong)(i >> 2), i & 3));
            int q = (int)(u < x - lo ? lo + 1 : lo);
            b[4 + i] = unchecked((byte)(sbyte)Math.Clamp(q, -127, 127));
        }
        return new EncodedGradient(b, values.Length);
    }

    public override void Decode(EncodedGradient message, Span<float> output)
    {
        float scale = BinaryPrimitives.ReadSingleLittleEndian(message.Bytes);
        for (int i = 0; i < message.Count; i++) output[i] = (sbyte)message.Bytes[4 + i] * scale / 127f;
    }
}

/// <summary>Scaled sign (1-bit SGD, Seide et al. 2014; signSGD with error feedback, Karimireddy et al. 2019): one bit per
/// element and the mean magnitude as the scale — 4 + ⌈n/8⌉ bytes, 32x less than float32.</summary>
public sealed class SignCodec : GradientCodec
{
    public override string Name => "sign";
    public override bool ErrorFeedback => true;

    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values)
    {
        var b = new byte[4 + (values.Length + 7) / 8];
        double sum = 0;
        foreach (var v in values) sum += Math.Abs(v);
        BinaryPrimitives.WriteSingleLittleEndian(b, values.Length == 0 ? 0 : (float)(sum / values.Length));
        for (int i = 0; i < values.Length; i++)
            if (values[i] >= 0) b[4 + i / 8] |= (byte)(1 << (i % 8));
        return new EncodedGradient(b, values.Length);
    }

    public override void Decode(EncodedGradient message, Span<float> output)
    {
        float scale = BinaryPrimitives.ReadSingleLittleEndian(message.Bytes);
        for (int i = 0; i < message.Count; i++)
            output[i] = (message.Bytes[4 + i / 8] & (1 << (i % 8))) != 0 ? scale : -scale;
    }
}
