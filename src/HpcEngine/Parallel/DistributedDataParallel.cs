using HpcEngine.Autograd;
using HpcEngine.Distributed;
using HpcEngine.NN;

namespace HpcEngine.Parallel;

/// <summary>Synchronous data parallelism, as PyTorch's DistributedDataParallel: every rank holds the whole model, runs
/// forward and backward on its own share of the batch, and the gradients are averaged across ranks before the
/// optimizer step, so all replicas stay identical.
/// <list type="bullet">
/// <item>Construction broadcasts parameters and buffers from rank 0.</item>
/// <item>Gradients are grouped in buckets of about <c>bucketBytes</c> (default 25 MB), filled in reverse parameter
/// order — roughly the order backward produces them. Each parameter's gradient-ready hook copies its gradient into
/// its bucket; when a bucket is complete its allreduce is launched at once, while backward goes on computing
/// earlier layers (communication overlaps computation).</item>
/// <item><see cref="Synchronize"/> (call it after backward, before the optimizer step) waits only for what is still
/// outstanding and writes the averaged gradients back into <c>.Grad</c>.</item>
/// <item>Inside <see cref="NoSync"/> nothing is communicated: gradients accumulate locally and are averaged by the
/// next synchronised backward.</item>
/// </list></summary>
public sealed class DistributedDataParallel : IDisposable
{
    private sealed class Bucket
    {
        public required Tensor[] Params;
        public required int[] Offsets;
        public required Tensor Buffer;
        public int Ready;
        public Work? Work;

        /// <summary>A host copy of a device bucket, which the codecs (host code) compress and average.</summary>
        public Compression.HostStaging? Staging;
    }

    private readonly IProcessGroup _pg;
    private readonly Compression.GradientCodec? _codec;
    private readonly Bucket[] _buckets;
    private readonly Dictionary<Tensor, (Bucket Bucket, int Slot)> _slot = new(ReferenceEqualityComparer.Instance);
    private readonly List<IDisposable> _hooks = new();
    private readonly List<string> _events = new();
    private bool _noSync;

    /// <summary>The wrapped model (every rank holds a full replica).</summary>
    public Module Module { get; }

    /// <summary>Bucket sizes in bytes, in launch order.</summary>
    public IReadOnlyList<long> BucketBytes => _buckets.Select(b => (long)b.Buffer.NumEl * 4).ToArray();

    /// <summary>Gradient payload bytes this rank contributed so far: the bucket bytes for the allreduce path, the
    /// encoded message bytes with a codec (a ring allgather then sends n−1 such messages per rank).</summary>
    public long BytesReduced { get; private set; }

    /// <summary>The codec compressing the buckets, if any.</summary>
    public Compression.GradientCodec? Codec => _codec;

    /// <summary>What happened during the last backward, in order: "grad:NAME" when a gradient became final, "launch:K"
    /// when bucket K's allreduce started. Tests use it to check that communication overlaps backward.</summary>
    public IReadOnlyList<string> Events => _events;

    /// <param name="module">The model replica on this rank.</param>
    /// <param name="processGroup">The ranks that train together.</param>
    /// <param name="bucketBytes">Target bucket size in bytes (PyTorch's default is 25 MB).</param>
    /// <param name="codec">Optional gradient compression: each complete bucket is averaged by the codec's exchange
    /// (message codecs allgather their messages — never summed as if dense — and every rank decodes all of them;
    /// PowerSGD runs its two allreduce rounds), with the codec's error feedback, so replicas stay identical.</param>
    public DistributedDataParallel(
        Module module,
        IProcessGroup processGroup,
        long bucketBytes = 25L << 20,
        Compression.GradientCodec? codec = null
    )
    {
        _codec = codec;
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(processGroup);
        if (bucketBytes <= 0)
            throw new ArgumentOutOfRangeException(nameof(bucketBytes), "bucket size must be positive");
        Module = module;
        _pg = processGroup;
        using (GradMode.NoGrad())
        {
            // Start from rank 0's weights and statistics.
            var works = module
                .StateDict()
                .Select(kv => kv.Value)
                .Where(t => t.DType.IsFloating())
                .Select(t => _pg.Broadcast(t, new BroadcastOptions { Root = 0 }))
                .ToArray();
            foreach (var w in works)
                w.Wait();
        }
        var named = module.NamedParameters().ToList();
        if (named.Any(p => p.Parameter.DType != DType.Float32))
            throw new DTypeMismatchException("DistributedDataParallel expects float32 parameters (master weights)");
        // Buckets live where the parameters are: on a GPU they are reduced in place by a group that takes device
        // tensors (nccl). The compression codecs are host code: a device bucket is staged through a host copy for them.
        var device = named.Count > 0 ? named[0].Parameter.Device : Device.Cpu;
        if (named.Any(p => p.Parameter.Device != device))
            throw new DeviceMismatchException(
                "DistributedDataParallel: the parameters are on several devices; move the module with module.To(device)"
            );
        var buckets = new List<Bucket>();
        var current = new List<Tensor>();
        long size = 0;
        void Close()
        {
            if (current.Count == 0)
                return;
            var offsets = new int[current.Count];
            int total = 0;
            for (int i = 0; i < current.Count; i++)
            {
                offsets[i] = total;
                total += current[i].NumEl;
            }
            buckets.Add(
                new Bucket
                {
                    Params = [.. current],
                    Offsets = offsets,
                    Buffer = Tensor.Empty([total], DType.Float32, device, zeroed: true).DetachFromScope(),
                }
            );
            current.Clear();
            size = 0;
        }
        for (int i = named.Count - 1; i >= 0; i--)
        {
            var p = named[i].Parameter;
            current.Add(p);
            size += (long)p.NumEl * 4;
            if (size >= bucketBytes)
                Close();
        }
        Close();
        _buckets = [.. buckets];
        var names = new Dictionary<Tensor, string>(ReferenceEqualityComparer.Instance);
        foreach (var (n, p) in named)
            names[p] = n;
        foreach (var b in _buckets)
            for (int i = 0; i < b.Params.Length; i++)
            {
                var p = b.Params[i];
                _slot[p] = (b, i);
                string name = names[p];
                _hooks.Add(p.RegisterGradReadyHook(t => OnGradReady(t, name)));
            }
    }

    /// <summary>Runs forward through the wrapped module.</summary>
    public Tensor Forward(Tensor input) => Module.Forward(input);

    /// <summary>A scope in which backward does not communicate (gradient accumulation steps).</summary>
    public IDisposable NoSync()
    {
        _noSync = true;
        return new Restore(this);
    }

    private sealed class Restore(DistributedDataParallel ddp) : IDisposable
    {
        public void Dispose() => ddp._noSync = false;
    }

    private void OnGradReady(Tensor p, string name)
    {
        if (_noSync)
            return;
        if (_buckets.All(b => b.Ready == 0 && b.Work == null))
            _events.Clear();
        _events.Add("grad:" + name);
        var (b, slot) = _slot[p];
        Copy(p.Grad!, b, slot);
        if (++b.Ready == b.Params.Length)
            Launch(b);
    }

    private static void Copy(Tensor grad, Bucket b, int slot)
    {
        using var dst = b.Buffer.Narrow(0, b.Offsets[slot], b.Params[slot].NumEl);
        using var src = grad.Reshape(-1);
        Ops.CopyInto(dst, src);
    }

    /// <summary>Seconds the hooks spent inside the group's calls since the last <see cref="Synchronize"/>: a group may
    /// finish a small op before its call returns (the TCP backend does over shared memory), and that time is
    /// communication too, not the backward pass's.</summary>
    private double _launchSeconds;

    private void Launch(Bucket b)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            Issue(b);
        }
        finally
        {
            _launchSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
    }

    private void Issue(Bucket b)
    {
        int index = Array.IndexOf(_buckets, b);
        _events.Add("launch:" + index);
        if (_codec == null)
        {
            BytesReduced += (long)b.Buffer.NumEl * 4;
            b.Work = _pg.AllReduce(b.Buffer, new AllReduceOptions { Op = ReduceOp.Avg });
            return;
        }
        // The codec issues its collectives here, on the hook's thread: every rank must issue them in the same order.
        b.Staging ??= new Compression.HostStaging(_codec);
        var flat = b.Staging.ForCodec(b.Buffer);
        var exchange = _codec.Exchange(flat, b.Params.Select(p => p.ShapeArray).ToArray(), _pg, index);
        BytesReduced += exchange.EncodedBytes;
        b.Work = exchange.Work;
    }

    /// <summary>Waits for the outstanding allreduces and writes the averaged gradients into every parameter's
    /// <c>.Grad</c>. Buckets whose parameters got no gradient this step (unused parameters) are completed with zeros
    /// and reduced now, so every rank runs the same collectives. Returns the seconds spent communicating: waiting here,
    /// plus the time the hooks spent inside the group's calls since the last synchronisation.</summary>
    public double Synchronize()
    {
        double inHooks = _launchSeconds; // launches below are inside this call's own time
        var sw = System.Diagnostics.Stopwatch.StartNew();
        foreach (var b in _buckets)
        {
            if (b.Work == null)
            {
                for (int i = 0; i < b.Params.Length; i++)
                    if (b.Params[i].Grad == null)
                        using (var dst = b.Buffer.Narrow(0, b.Offsets[i], b.Params[i].NumEl))
                            dst.FillRaw0();
                Launch(b);
            }
        }
        foreach (var b in _buckets)
        {
            b.Work!.Wait();
            if (_codec != null)
                b.Staging?.CopyBack(b.Buffer);
            for (int i = 0; i < b.Params.Length; i++)
            {
                var p = b.Params[i];
                using var src = b.Buffer.Narrow(0, b.Offsets[i], p.NumEl);
                using var shaped = src.Reshape(p.ShapeArray);
                if (p.Grad == null)
                    p.Grad = shaped.Clone().DetachFromScope();
                else
                    Ops.CopyInto(p.Grad, shaped);
            }
            b.Work = null;
            b.Ready = 0;
        }
        _launchSeconds = 0;
        return sw.Elapsed.TotalSeconds + inHooks;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var h in _hooks)
            h.Dispose();
        foreach (var b in _buckets)
        {
            b.Buffer.Dispose();
            b.Staging?.Dispose();
        }
    }
}

internal static class FillExtensions
{
    /// <summary>Zeroes a (possibly non-contiguous) view in place without recording.</summary>
    public static void FillRaw0(this Tensor t)
    {
        if (t.IsContiguous)
        {
            t.FillRaw(0);
            return;
        }
        using var z = Tensor.Zeros([], t.DType);
        using var zd = z.To(t.Device);
        Ops.CopyInto(t, zd);
    }
}
