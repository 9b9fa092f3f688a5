using System.Globalization;

namespace HpcEngine.Compression;

/// <summary>Deep Gradient Compression's top-k (Lin et al. 2018): momentum correction and momentum-factor masking on
/// top of top-k with error feedback. Each rank keeps its own velocity u ← m·u + g and accumulation v ← v + u, sends
/// the ⌈fraction·n⌉ largest |v|, and clears u and v where it sent. The momentum lives here, so the optimizer that
/// applies the averaged message must be plain SGD (the trainer sets its momentum to 0 and hands the value to the
/// codec). Plain top-k with error feedback delays gradients that SGD's momentum would then amplify out of step;
/// accumulating the velocity locally sends what momentum SGD would have applied.</summary>
public sealed class DgcCodec : SparseCodec
{
    private readonly TopKCodec _select;
    private readonly Dictionary<int, float[]> _velocity = new();

    /// <param name="fraction">Share of each bucket sent per step.</param>
    /// <param name="momentum">The SGD momentum the codec applies (the optimizer's is then 0).</param>
    public DgcCodec(double fraction, double momentum = 0.9)
        : base(fraction)
    {
        if (momentum is < 0 or >= 1)
            throw new ArgumentOutOfRangeException(nameof(momentum), $"dgc: momentum must be in [0, 1), got {momentum}");
        Momentum = momentum;
        _select = new TopKCodec(fraction);
    }

    /// <summary>The momentum factor whose correction accumulates the velocity before top-k selection (Lin et al.
    /// 2018).</summary>
    public double Momentum { get; }

    /// <inheritdoc/>
    public override string Name => $"dgc:{Fraction.ToString(CultureInfo.InvariantCulture)}";

    /// <inheritdoc/>
    public override EncodedGradient Encode(ReadOnlySpan<float> gradient, int key = 0)
    {
        int n = gradient.Length;
        var v = Residual(key, n);
        if (!_velocity.TryGetValue(key, out var u) || u.Length != n)
            _velocity[key] = u = new float[n];
        float m = (float)Momentum;
        for (int i = 0; i < n; i++)
        {
            u[i] = m * u[i] + gradient[i];
            v[i] += u[i];
        }
        var msg = EncodeCore(v);
        // Momentum-factor masking: what was sent leaves both the accumulation and the velocity.
        int k = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(msg.Bytes);
        for (int j = 0; j < k; j++)
        {
            int i = System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(msg.Bytes.AsSpan(4 + 8 * j));
            v[i] = 0;
            u[i] = 0;
        }
        return msg;
    }

    /// <inheritdoc/>
    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values) => _select.EncodeTopK(values);

    /// <inheritdoc/>
    public override Dictionary<string, Tensor> StateDict()
    {
        var d = base.StateDict();
        foreach (var (k, u) in _velocity)
            d[$"velocity.{k.ToString(CultureInfo.InvariantCulture)}"] = Tensor
                .FromArray((float[])u.Clone())
                .DetachFromScope();
        return d;
    }

    /// <inheritdoc/>
    protected override void ClearExtraState() => _velocity.Clear();

    /// <inheritdoc/>
    protected override bool LoadExtraEntry(string key, Tensor value)
    {
        if (
            !key.StartsWith("velocity.", StringComparison.Ordinal)
            || !int.TryParse(key["velocity.".Length..], CultureInfo.InvariantCulture, out int bucket)
        )
            return false;
        _velocity[bucket] = value.ToArray<float>();
        return true;
    }
}
