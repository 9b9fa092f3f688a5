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
        return new CodecExchange(
            group.AllReduce(flat, new AllReduceOptions { Op = ReduceOp.Avg }),
            (long)flat.NumEl * 4
        );
    }

    /// <inheritdoc/>
    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values) =>
        new(MemoryMarshal.AsBytes(values).ToArray(), values.Length);

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
        var done = reduce.Task.ContinueWith(
            t =>
            {
                try
                {
                    t.GetAwaiter().GetResult();
                    Ops.CopyInto(flat, narrow);
                }
                finally
                {
                    narrow.Dispose();
                }
            },
            TaskScheduler.Default
        );
        return new CodecExchange(new Work(done), 2L * flat.NumEl);
    }

    /// <inheritdoc/>
    protected override EncodedGradient EncodeCore(ReadOnlySpan<float> values)
    {
        var b = new byte[values.Length * 2];
        // little-endian, like every wire format here
        BFloat16Bits.Narrow(values, MemoryMarshal.Cast<byte, ushort>(b.AsSpan()), bf16);
        return new EncodedGradient(b, values.Length);
    }

    /// <inheritdoc/>
    public override void Decode(EncodedGradient message, Span<float> output) =>
        BFloat16Bits.Widen(MemoryMarshal.Cast<byte, ushort>(message.Bytes.AsSpan(0, 2 * message.Count)), output, bf16);
}

/// <summary>8-bit stochastic quantisation (QSGD, Alistarh et al. 2017, s = 127 levels): q_i = round_stochastic(v_i /
/// max|v| · 127), unbiased (E[decode] = v); a float32 scale then one signed byte per element — 4 + n bytes.</summary>
public sealed class Int8Codec(ulong seed) : MessageCodec
{
    private ulong _counter;

    /// <inheritdoc/>
    public override string Name => "int8";

    /// <summary>On a device: scale = max |v|, and the encode draws from the same Philox counters as the
    /// host's.</summary>
    private protected override DeviceHalves? OnDevice =>
        new(
            Backends.MessageFormat.Int8,
            n => n,
            v => v.NumEl == 0 ? Tensor.Empty([], DType.Float32, v.Device, zeroed: true) : MaxAbs(v),
            n => (seed, Reserve(n))
        );

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
        foreach (var v in values)
            scale = Math.Max(scale, Math.Abs(v));
        BinaryPrimitives.WriteSingleLittleEndian(b, scale);
        ulong block = Reserve(values.Length);
        for (int i = 0; i < values.Length; i++)
        {
            if (scale == 0)
            {
                b[4 + i] = 0;
                continue;
            }
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
        for (int i = 0; i < message.Count; i++)
            output[i] = (sbyte)message.Bytes[4 + i] * scale / 127f;
    }
}

/// <summary>Scaled sign (1-bit SGD, Seide et al. 2014; signSGD with error feedback, Karimireddy et al. 2019): one bit
/// per element and the mean magnitude as the scale — 4 + ⌈n/8⌉ bytes, 32x less than float32.</summary>
public sealed class SignCodec : MessageCodec
{
    /// <inheritdoc/>
    public override string Name => "sign";

    /// <inheritdoc/>
    public override bool ErrorFeedback => true;

    /// <summary>On a device: scale = mean |v| (summed in float32 there, in float64 on the host: the scales can differ
    /// in the last bit, the format not).</summary>
    private protected override DeviceHalves? OnDevice =>
        new(
            Backends.MessageFormat.Sign,
            n => (n + 7) / 8,
            v => v.NumEl == 0 ? Tensor.Empty([], DType.Float32, v.Device, zeroed: true) : MeanAbs(v),
            _ => (0, 0)
        );

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
        foreach (var v in values)
            sum += Math.Abs(v);
        BinaryPrimitives.WriteSingleLittleEndian(b, values.Length == 0 ? 0 : (float)(sum / values.Length));
        for (int i = 0; i < values.Length; i++)
            if (values[i] >= 0)
                b[4 + i / 8] |= (byte)(1 << (i % 8));
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
