using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using HpcEngine.Distributed;

namespace HpcEngine.Compression;

/// <summary>Sparse message: k (int32 index, float32 value) pairs after a 4-byte count — 4 + 8k bytes.</summary>
public abstract class SparseCodec(double fraction) : MessageCodec
{
    /// <summary>The share of elements sent per step once any warm-up is over (0 &lt; fraction ≤ 1).</summary>
    public double Fraction { get; } = fraction;

    /// <inheritdoc/>
    public override bool ErrorFeedback => true;

    /// <summary>The share sent by the encode in progress (a warm-up may raise it above <see
    /// cref="Fraction"/>).</summary>
    protected virtual double CurrentFraction => Fraction;

    /// <summary>How many of <paramref name="n"/> elements a message carries now: ⌈fraction·n⌉, at least one of a
    /// non-empty bucket.</summary>
    protected int K(int n) => n == 0 ? 0 : Math.Max(1, (int)Math.Ceiling(CurrentFraction * n));

    /// <summary>The sparse message of <paramref name="values"/> at <paramref name="indices"/>: a count, then (index,
    /// value) pairs.</summary>
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
            if ((uint)i >= (uint)message.Count)
                throw new InvalidDataException($"{Name}: index {i} outside a gradient of {message.Count} elements");
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

    /// <summary>Top-k keeping <paramref name="fraction"/> of the elements; the first <paramref name="warmupSteps"/>
    /// steps ramp the fraction down from dense (DGC's warm-up).</summary>
    public TopKCodec(double fraction, int warmupSteps = 0)
        : base(fraction)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(warmupSteps);
        WarmupSteps = warmupSteps;
        _current = fraction;
    }

    /// <summary>Encodes over which the share falls from 25 % to <see cref="SparseCodec.Fraction"/> (0: none).</summary>
    public int WarmupSteps { get; }

    /// <inheritdoc/>
    public override string Name =>
        $"topk:{Fraction.ToString(CultureInfo.InvariantCulture)}{(WarmupSteps > 0 ? $":{WarmupSteps}" : "")}";

    /// <inheritdoc/>
    protected override double CurrentFraction => _current;

    /// <summary>The share sent at a bucket's <paramref name="step"/>-th encode (from 0).</summary>
    public double FractionAt(int step)
    {
        if (step >= WarmupSteps || Fraction >= WarmupStart)
            return Fraction;
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
            state[$"steps.{key.ToString(CultureInfo.InvariantCulture)}"] = Tensor
                .FromArray([(long)step])
                .DetachFromScope();
        return state;
    }

    /// <inheritdoc/>
    protected override void ClearExtraState() => _steps.Clear();

    /// <inheritdoc/>
    protected override bool LoadExtraEntry(string key, Tensor value)
    {
        if (
            !key.StartsWith("steps.", StringComparison.Ordinal)
            || !int.TryParse(key["steps.".Length..], CultureInfo.InvariantCulture, out int k)
        )
            return false;
        _steps[k] = (int)value.ToArray<long>()[0];
        return true;
    }

    /// <inheritdoc/>
    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values) => EncodeTopK(values);

    /// <summary>The top-k message of <paramref name="values"/> (no error feedback: the caller keeps its own
    /// state).</summary>
    internal EncodedGradient EncodeTopK(ReadOnlySpan<float> values)
    {
        int n = values.Length,
            k = K(n);
        if (k == 0)
            return Pack(values, []);
        // The k-th largest magnitude by quickselect (average O(n), not a full sort), then every index above it and
        // as many at it as k still needs, in index order (deterministic for ties).
        var mags = new float[n];
        for (int i = 0; i < n; i++)
            mags[i] = Math.Abs(values[i]);
        float threshold = Select(mags, n - k);
        var idx = new int[k];
        int c = 0;
        for (int i = 0; i < n && c < k; i++)
            if (Math.Abs(values[i]) > threshold)
                idx[c++] = i;
        for (int i = 0; i < n && c < k; i++)
            if (Math.Abs(values[i]) == threshold)
                idx[c++] = i;
        Array.Sort(idx);
        return Pack(values, idx);
    }

    /// <summary>The element that would sit at <paramref name="rank"/> if <paramref name="a"/> were sorted ascending
    /// (Hoare's quickselect with a middle pivot; reorders <paramref name="a"/>).</summary>
    private static float Select(float[] a, int rank)
    {
        int lo = 0,
            hi = a.Length - 1;
        while (lo < hi)
        {
            float pivot = a[lo + (hi - lo) / 2];
            int i = lo,
                j = hi;
            while (i <= j)
            {
                while (a[i] < pivot)
                    i++;
                while (a[j] > pivot)
                    j--;
                if (i <= j)
                {
                    (a[i], a[j]) = (a[j], a[i]);
                    i++;
                    j--;
                }
            }
            if (rank <= j)
                hi = j;
            else if (rank >= i)
                lo = i;
            else
                return a[rank];
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
