using HpcEngine.Distributed;

namespace HpcEngine.Compression;

/// <summary>A compressed gradient as it goes on the wire: exactly <see cref="Bytes"/>.Length bytes.</summary>
public sealed record EncodedGradient(byte[] Bytes, int Count)
{
    /// <summary>Bytes on the wire.</summary>
    public int WireBytes => Bytes.Length;
}

/// <summary>A codec that turns each rank's vector into one self-contained message. The default exchange allgathers
/// the messages (their formats — sparse pairs, packed bits, per-message scales — cannot be summed element-wise) and
/// every rank decodes all of them in rank order and averages, so replicas stay bit-identical.</summary>
public abstract class MessageCodec : GradientCodec
{
    /// <summary>Encodes <paramref name="gradient"/> for bucket <paramref name="key"/>. With error feedback the residual
    /// of the previous step is added first and what is not sent becomes the new residual, so nothing is lost, only
    /// delayed: decode(encode(g)) + residual_new = g + residual_old, exactly.</summary>
    public virtual EncodedGradient Encode(ReadOnlySpan<float> gradient, int key = 0)
    {
        if (!ErrorFeedback)
            return EncodeCore(gradient);
        var r = Residual(key, gradient.Length);
        var v = new float[gradient.Length];
        for (int i = 0; i < v.Length; i++)
            v[i] = gradient[i] + r[i];
        var msg = EncodeCore(v);
        var sent = new float[v.Length];
        Decode(msg, sent);
        for (int i = 0; i < v.Length; i++)
            r[i] = v[i] - sent[i];
        return msg;
    }

    /// <summary>Writes the dense values a message stands for into <paramref name="output"/> (overwriting it).</summary>
    public abstract void Decode(EncodedGradient message, Span<float> output);

    /// <summary>Encodes <paramref name="values"/> (the gradient with error feedback already added) into this codec's
    /// message; the base class keeps the residual.</summary>
    protected abstract EncodedGradient EncodeCore(ReadOnlySpan<float> values);

    /// <summary>How this format encodes and decodes on a device (its kernels, the scale, the random stream), or null:
    /// then only host tensors are taken.</summary>
    private protected virtual DeviceHalves? OnDevice => null;

    /// <summary>The device halves of a dense message format: the kernels' format, the message body's size for n
    /// values (after the 4-byte scale), the scale of a device vector (0-dim), and the Philox stream of the next encode
    /// of n values (the same counters the host encode would use).</summary>
    private protected sealed record DeviceHalves(
        Backends.MessageFormat Format,
        Func<int, int> BodyBytes,
        Func<Tensor, Tensor> Scale,
        Func<int, (ulong Seed, ulong Start)> Stream
    );

    /// <inheritdoc/>
    public override bool TakesDeviceTensors => OnDevice != null;

    /// <inheritdoc/>
    public override CodecExchange Exchange(Tensor flat, IReadOnlyList<int[]> shapes, IProcessGroup group, int key)
    {
        ArgumentNullException.ThrowIfNull(flat);
        ArgumentNullException.ThrowIfNull(group);
        if (!flat.IsCpu)
            return DeviceExchange(
                flat,
                group,
                key,
                OnDevice
                    ?? throw new DeviceMismatchException(
                        $"codec {Name} compresses host memory: hand it a host copy of {flat.Device} tensors"
                    )
            );
        // Encode now, on this thread (the residual belongs to this step), and start the allgather here: every rank
        // must issue its collectives in the same order. Only the decode runs later, as a continuation.
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        var message = Encode(flat.AsReadOnlySpan<float>(), key);
        CompressSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
        int len = message.WireBytes;
        var mine = Tensor.FromBytes(message.Bytes, DType.UInt8, len).DetachFromScope();
        var all = Tensor.Zeros([group.Size * len], DType.UInt8).DetachFromScope();
        var gather = group.AllGather(all, mine);
        var done = gather.Task.ContinueWith(
            t =>
            {
                try
                {
                    t.GetAwaiter().GetResult();
                    long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
                    DecodeAverage(flat, all.ToBytes(), group.Size, message.Count, len);
                    CompressSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(t1).TotalSeconds;
                }
                finally
                {
                    mine.Dispose();
                    all.Dispose();
                }
            },
            TaskScheduler.Default
        );
        return new CodecExchange(new Work(done), len);
    }

    private void DecodeAverage(Tensor flat, byte[] bytes, int ranks, int count, int len)
    {
        var sum = new float[count];
        var part = new float[count];
        // Decode in rank order so every rank computes the same bits.
        for (int r = 0; r < ranks; r++)
        {
            Decode(new EncodedGradient(bytes.AsSpan(r * len, len).ToArray(), count), part);
            for (int i = 0; i < sum.Length; i++)
                sum[i] += part[i];
        }
        for (int i = 0; i < sum.Length; i++)
            sum[i] /= ranks;
        using var avg = Tensor.FromArray(sum);
        Ops.CopyInto(flat, avg);
    }

    /// <summary>The exchange with the gradient on a device: encode there (error feedback's residual stays there too),
    /// allgather the messages — the same bytes a host encode would send — and decode them in rank order into a sum
    /// there, so only messages cross to and from the device.</summary>
    private CodecExchange DeviceExchange(Tensor flat, IProcessGroup group, int key, DeviceHalves halves)
    {
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        int n = flat.NumEl,
            len = 4 + halves.BodyBytes(n);
        var device = flat.Device;
        var backend = Backends.DeviceBackends.For(device);
        var mine = Tensor.Empty([len], DType.UInt8, device).DetachFromScope();
        using (Autograd.GradMode.NoGrad())
        using (var v = ErrorFeedback ? Ops.Add(flat, DeviceResidual(key, n, device)) : flat.Alias())
        using (var scale = halves.Scale(v))
        {
            var (seed, start) = halves.Stream(n);
            backend.EncodeMessage(halves.Format, v, scale, mine, seed, start);
            if (ErrorFeedback)
            {
                // What was not sent stays: residual = v − decode(message), exactly as the host encode keeps it.
                using var sent = Tensor.Empty([n], DType.Float32, device, zeroed: true);
                backend.DecodeAddMessage(halves.Format, mine, sent);
                using var rest = Ops.Sub(v, sent);
                Ops.CopyInto(DeviceResidual(key, n, device), rest);
            }
        }
        CompressSeconds += System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalSeconds;
        var all = Tensor.Empty([group.Size * len], DType.UInt8, device).DetachFromScope();
        var gather = group.AllGather(all, mine);
        var done = gather.Task.ContinueWith(
            t =>
            {
                try
                {
                    t.GetAwaiter().GetResult();
                    // Decode in rank order so every rank computes the same bits (as the host path).
                    using var sum = Tensor.Empty([n], DType.Float32, device, zeroed: true);
                    for (int r = 0; r < group.Size; r++)
                        using (var message = all.Narrow(0, r * len, len))
                            backend.DecodeAddMessage(halves.Format, message, sum);
                    using var avg = Ops.DivScalar(sum, group.Size);
                    Ops.CopyInto(flat, avg);
                }
                finally
                {
                    mine.Dispose();
                    all.Dispose();
                }
            },
            TaskScheduler.Default
        );
        return new CodecExchange(new Work(done), len);
    }
}
