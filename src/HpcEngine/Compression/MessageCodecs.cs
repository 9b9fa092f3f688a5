#pragma warning disable CS1591 // XML docs owed on some public members of this file (#17: document them, then drop this line)
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using HpcEngine.Distributed;

namespace HpcEngine.Compression;

/// <summary>float32 as is: 4 bytes per element.</summary>
public sealed class NoneCodec : MessageCodec
{
    /// <inheritdoc/>
    public override string Name => "none";

    /// <inheritdoc/>
    public override bool TakesDeviceTensors => true;

    /// <summary>A plain averaging allreduce (no message to gather: float32 sums as is).</summary>
    public override CodecExchange Exchange(Tensor flat, IReadOnlyList<int[]> shapes, IProcessGroup group, int key)
    {
        ArgumentNullException.ThrowIfNull(flat);
        ArgumentNullException.ThrowIfNull(group);
        return new CodecExchange(group.AllReduce(flat, new AllReduceOptions { Op = ReduceOp.Avg }), (long)flat.NumEl * 4);
    }

    /// <inheritdoc/>
    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values) => new(MemoryMarshal.AsBytes(values).ToArray(), values.Length);

    /// <inheritdoc/>
    public override void Decode(EncodedGradient message, Span<float> output) =>
        MemoryMarshal.Cast<byte, float>(message.Bytes.AsSpan()).CopyTo(output);
}

/// <summary>fp16 or bf16 (round to nearest even): 2 bytes per element. Dense, so it is summed on the wire: a ring
/// allreduce over the 16-bit values (each hop adds in fp32 and rounds back, as NCCL does) moves half the bytes of the
/// fp32 allreduce — an allgather of the messages would move as many as fp32. fp16 saturates beyond ±65504: gradients
/// are far below that; use bf16 (fp32's range) when they might not be.</summary>
public sealed class HalfCodec(bool bf16) : MessageCodec
{
    /// <inheritdoc/>
    public override string Name => bf16 ? "bf16" : "fp16";

    /// <summary>The cast, the 16-bit allreduce and the cast back all run where the tensor is.</summary>
    public override bool TakesDeviceTensors => true;

    /// <inheritdoc/>
    public override CodecExchange Exchange(Tensor flat, IReadOnlyList<int[]> shapes, IProcessGroup group, int key)
    {
        ArgumentNullException.ThrowIfNull(flat);
        ArgumentNullException.ThrowIfNull(group);
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        var narrow = Ops.ToDType(flat, bf16 ? DType.BFloat16 : DType.Float16, forceCopy: true).DetachFromScope();
        CompressSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var reduce = group.AllReduce(narrow, new AllReduceOptions { Op = ReduceOp.Avg, NarrowWire = true });
        var done = reduce.Task.ContinueWith(t =>
        {
            try
            {
                t.GetAwaiter().GetResult();
                Ops.CopyInto(flat, narrow);
            }
            finally { narrow.Dispose(); }
        }, TaskScheduler.Default);
        return new CodecExchange(new Work(done), 2L * flat.NumEl);
    }

    /// <inheritdoc/>
    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values)
    {
        var b = new byte[values.Length * 2];
        BFloat16Bits.Narrow(values, MemoryMarshal.Cast<byte, ushort>(b.AsSpan()), bf16); // little-endian, like every wire format here
        return new EncodedGradient(b, values.Length);
    }

    /// <inheritdoc/>
    public override void Decode(EncodedGradient message, Span<float> output) =>
        BFloat16Bits.Widen(MemoryMarshal.Cast<byte, ushort>(message.Bytes.AsSpan(0, 2 * message.Count)), output, bf16);
}

/// <summary>Sparse message: k (int32 index, float32 value) pairs after a 4-byte count — 4 + 8k bytes.</summary>
public abstract class SparseCodec(double fraction) : MessageCodec
{
    public double Fraction { get; } = fraction;
    /// <inheritdoc/>
    public override bool ErrorFeedback => true;

    /// <summary>The share sent by the encode in progress (a warm-up may raise it above <see cref="Fraction"/>).</summary>
    protected virtual double CurrentFraction => Fraction;

    protected int K(int n) => n == 0 ? 0 : Math.Max(1, (int)Math.Ceiling(CurrentFraction * n));

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

    /// <inheritdoc/>
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
/// entries of largest magnitude are sent, the rest kept as residual. With a warm-up of W steps (DGC's sparsity
/// warm-up, Lin et al. 2018), a bucket's share starts at 25 % and falls geometrically to the fraction over its first W
/// encodes, so the early, fast-changing gradients are not starved; every rank counts the same steps, so message
/// sizes agree.</summary>
public sealed class TopKCodec : SparseCodec
{
    private const double WarmupStart = 0.25;
    private readonly Dictionary<int, int> _steps = new();
    private double _current;

    public TopKCodec(double fraction, int warmupSteps = 0) : base(fraction)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        WarmupSteps = warmupSteps;
        _current = fraction;
    }

    /// <summary>Encodes over which the share falls from 25 % to <see cref="SparseCodec.Fraction"/> (0: none).</summary>
    public int WarmupSteps { get; }

    /// <inheritdoc/>
    public override string Name => $"topk:{Fraction.ToString(CultureInfo.InvariantCulture)}{(WarmupSteps > 0 ? $":{WarmupSteps}" : "")}";

    /// <inheritdoc/>
    protected override double CurrentFraction => _current;

    /// <summary>The share sent at a bucket's <paramref name="step"/>-th encode (from 0).</summary>
    public double FractionAt(int step)
    {
        if (step >= WarmupSteps || Fraction >= WarmupStart) return Fraction;
        double t = (double)step / WarmupSteps;
        return Math.Exp((1 - t) * Math.Log(WarmupStart) + t * Math.Log(Fraction));
    }

    /// <inheritdoc/>
    public override EncodedGradient Encode(ReadOnlySpan<float> gradient, int key = 0)
    {
        int step = _steps.GetValueOrDefault(key);
        _current = FractionAt(step);
        _steps[key] = step + 1;
        return base.Encode(gradient, key);
    }

    /// <inheritdoc/>
    public override Dictionary<string, Tensor> StateDict()
    {
        var state = base.StateDict();
        foreach (var (key, step) in _steps)
            state[$"steps.{key.ToString(CultureInfo.InvariantCulture)}"] = Tensor.FromArray([(long)step]).DetachFromScope();
        return state;
    }

    /// <inheritdoc/>
    protected override void ClearExtraState() => _steps.Clear();

    /// <inheritdoc/>
    protected override bool LoadExtraEntry(string key, Tensor value)
    {
        if (!key.StartsWith("steps.", StringComparison.Ordinal) || !int.TryParse(key["steps.".Length..], CultureInfo.InvariantCulture, out int k)) return false;
        _steps[k] = (int)value.ToArray<long>()[0];
        return true;
    }

    /// <inheritdoc/>
    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values) => EncodeTopK(values);

    /// <summary>The top-k message of <paramref name="values"/> (no error feedback: the caller keeps its own state).</summary>
    internal EncodedGradient EncodeTopK(ReadOnlySpan<float> values)
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
    /// <inheritdoc/>
    public override string Name => $"randomk:{Fraction.ToString(CultureInfo.InvariantCulture)}";

    /// <inheritdoc/>
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
public sealed class Int8Codec(ulong seed) : MessageCodec
{
    private ulong _counter;
    /// <inheritdoc/>
    public override string Name => "int8";

    /// <summary>On a device: scale = max |v|, and the encode draws from the same Philox counters as the host's.</summary>
    private protected override DeviceHalves? OnDevice => new(Backends.MessageFormat.Int8, n => n,
        v => v.NumEl == 0 ? Tensor.Empty([], DType.Float32, v.Device, zeroed: true) : MaxAbs(v), n => (seed, Reserve(n)));

    private static Tensor MaxAbs(Tensor v)
    {
        using var a = Ops.Abs(v);
        return Ops.Max(a);
    }

    private ulong Reserve(int n)
    {
        ulong block = _counter;
        _counter += (ulong)(n + 3) / 4;
        return block;
    }

    /// <inheritdoc/>
    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values)
    {
        var b = new byte[4 + values.Length];
        float scale = 0;
        foreach (var v in values) scale = Math.Max(scale, Math.Abs(v));
        BinaryPrimitives.WriteSingleLittleEndian(b, scale);
        ulong block = Reserve(values.Length);
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

    /// <inheritdoc/>
    public override void Decode(EncodedGradient message, Span<float> output)
    {
        float scale = BinaryPrimitives.ReadSingleLittleEndian(message.Bytes);
        for (int i = 0; i < message.Count; i++) output[i] = (sbyte)message.Bytes[4 + i] * scale / 127f;
    }
}

/// <summary>Scaled sign (1-bit SGD, Seide et al. 2014; signSGD with error feedback, Karimireddy et al. 2019): one bit per
/// element and the mean magnitude as the scale — 4 + ⌈n/8⌉ bytes, 32x less than float32.</summary>
public sealed class SignCodec : MessageCodec
{
    /// <inheritdoc/>
    public override string Name => "sign";
    /// <inheritdoc/>
    public override bool ErrorFeedback => true;

    /// <summary>On a device: scale = mean |v| (summed in float32 there, in float64 on the host: the scales can differ
    /// in the last bit, the format not).</summary>
    private protected override DeviceHalves? OnDevice => new(Backends.MessageFormat.Sign, n => (n + 7) / 8,
        v => v.NumEl == 0 ? Tensor.Empty([], DType.Float32, v.Device, zeroed: true) : MeanAbs(v), _ => (0, 0));

    private static Tensor MeanAbs(Tensor v)
    {
        using var a = Ops.Abs(v);
        return Ops.Mean(a);
    }

    /// <inheritdoc/>
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

    /// <inheritdoc/>
    public override void Decode(EncodedGradient message, Span<float> output)
    {
        float scale = BinaryPrimitives.ReadSingleLittleEndian(message.Bytes);
        for (int i = 0; i < message.Count; i++)
            output[i] = (message.Bytes[4 + i / 8] & (1 << (i % 8))) != 0 ? scale : -scale;
    }
}
