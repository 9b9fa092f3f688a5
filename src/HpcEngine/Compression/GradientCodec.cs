using System.Globalization;
using HpcEngine.Distributed;

namespace HpcEngine.Compression;

/// <summary>What one exchange started: the work to wait for (after which the tensor holds the average) and the
/// encoded bytes this rank contributed (each message once; the collective algorithm decides how often it is
/// forwarded — the transport's own counters give the bytes that really crossed the wire).</summary>
public sealed record CodecExchange(Work Work, long EncodedBytes);

/// <summary>Gradient-communication compression: a codec averages a flat float32 vector across a process group in its
/// own format and keeps whatever state it needs between steps (error-feedback residuals, PowerSGD's warm-start
/// factors), keyed by a bucket id and saved by checkpoints.
/// <list type="bullet">
/// <item><see cref="MessageCodec"/>s (none, fp16, bf16, top-k, random-k, int8, sign) encode each rank's vector into one
/// message; dense ones are reduced, sparse and packed ones are allgathered and decoded one by one — never summed as
/// if dense.</item>
/// <item><see cref="PowerSgdCodec"/> needs the matrix shapes and two allreduce rounds.</item>
/// </list>
/// Every collective an exchange needs is issued on the calling thread, so ranks that call exchanges in the same order
/// issue their collectives in the same order.</summary>
public abstract class GradientCodec
{
    private readonly Dictionary<int, float[]> _residuals = new();
    private readonly Dictionary<int, Tensor> _deviceResiduals = new();

    /// <summary>"none", "fp16", "topk:0.01", "powersgd:2" ...</summary>
    public abstract string Name { get; }

    /// <summary>Seconds spent encoding, decoding and factorising so far (not waiting for the network).</summary>
    public double CompressSeconds { get; protected set; }

    /// <summary>Whether the codec keeps what it did not send and adds it to the next step's input.</summary>
    public virtual bool ErrorFeedback => false;

    /// <summary>Whether <see cref="Exchange"/> takes a device tensor as it is (its work is tensor ops and collectives);
    /// otherwise the caller hands it a host copy.</summary>
    public virtual bool TakesDeviceTensors => false;

    /// <summary>Starts averaging <paramref name="flat"/> (float32, contiguous) across <paramref name="group"/>; when
    /// the returned work completes, <paramref name="flat"/> holds the (decoded) average on every rank, bit-identical
    /// across ranks. <paramref name="shapes"/> are the shapes of the tensors laid end to end in <paramref name="flat"/>
    /// (only low-rank codecs use them); <paramref name="key"/> names the bucket whose residual is used.</summary>
    public abstract CodecExchange Exchange(Tensor flat, IReadOnlyList<int[]> shapes, IProcessGroup group, int key);

    /// <summary>The error-feedback residual of a bucket, created zeroed on first use.</summary>
    protected float[] Residual(int key, int n)
    {
        if (!_residuals.TryGetValue(key, out var r) || r.Length != n)
            _residuals[key] = r = new float[n];
        return r;
    }

    /// <summary>The residual of a bucket whose gradients live on <paramref name="device"/>, kept there (a residual
    /// restored from a checkpoint moves there on first use).</summary>
    protected Tensor DeviceResidual(int key, int n, Device device)
    {
        if (_deviceResiduals.TryGetValue(key, out var t) && t.NumEl == n && t.Device == device)
            return t;
        t?.Dispose();
        if (_residuals.Remove(key, out var host) && host.Length == n)
            using (var h = Tensor.FromArray(host))
                t = Ops.MoveNoGrad(h, device).DetachFromScope();
        else
            t = Tensor.Empty([n], DType.Float32, device, zeroed: true).DetachFromScope();
        return _deviceResiduals[key] = t;
    }

    /// <summary>Every residual as host values (device ones copied back).</summary>
    private IEnumerable<(int Key, float[] Values)> Residuals() =>
        _residuals
            .Select(kv => (kv.Key, kv.Value))
            .Concat(_deviceResiduals.Select(kv => (kv.Key, kv.Value.ToArray<float>())));

    /// <summary>L2 norm of the residual of a bucket (0 without error feedback).</summary>
    public double ResidualNorm(int key) =>
        Residuals().Where(r => r.Key == key).Select(r => Math.Sqrt(r.Values.Sum(v => (double)v * v))).FirstOrDefault();

    /// <summary>L2 norm over every bucket's residual: what has been computed but not yet sent.</summary>
    public double TotalResidualNorm() => Math.Sqrt(Residuals().Sum(r => r.Values.Sum(v => (double)v * v)));

    /// <summary>The codec's state as tensors ("residual.{key}", and whatever a subclass adds), for
    /// checkpoints.</summary>
    public virtual Dictionary<string, Tensor> StateDict() =>
        Residuals()
            .ToDictionary(
                r => $"residual.{r.Key.ToString(CultureInfo.InvariantCulture)}",
                r => Tensor.FromArray((float[])r.Values.Clone()).DetachFromScope()
            );

    /// <summary>Restores <see cref="StateDict"/> output.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        _residuals.Clear();
        foreach (var t in _deviceResiduals.Values)
            t.Dispose();
        _deviceResiduals.Clear();
        ClearExtraState();
        foreach (var (k, t) in state)
        {
            if (
                k.StartsWith("residual.", StringComparison.Ordinal)
                && int.TryParse(k["residual.".Length..], CultureInfo.InvariantCulture, out int key)
            )
                _residuals[key] = t.ToArray<float>();
            else if (!LoadExtraEntry(k, t))
                throw new InvalidOperationException($"codec {Name}: unexpected state entry '{k}'");
        }
    }

    /// <summary>Forgets subclass state before a load.</summary>
    protected virtual void ClearExtraState() { }

    /// <summary>Loads a subclass's state entry; false when the key is not one of its own.</summary>
    protected virtual bool LoadExtraEntry(string key, Tensor value) => false;

    /// <summary>Builds a codec by name: none, fp16, bf16, topk:F (or topk:F:W with W warm-up steps), randomk:F, int8,
    /// sign, powersgd:R, dgc:F.</summary> <param name="spec">The codec's name and parameter.</param> <param
    /// name="seed">Seeds random-k's index draws, int8's stochastic rounding and PowerSGD's initial factors; give every
    /// rank the same seed.</param>
    public static GradientCodec Create(string spec, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return CodecSpec.Parse(spec).Create(seed);
    }
}
