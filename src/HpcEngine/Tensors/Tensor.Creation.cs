using System.Runtime.InteropServices;
using HpcEngine.Backends.Cpu;

namespace HpcEngine;

public sealed unsafe partial class Tensor
{
    /// <summary>A float32 tensor holding a copy of <paramref name="data"/> with the given shape (1-D when
    /// omitted).</summary>
    public static Tensor FromArray(float[] data, params int[] shape) => FromSpan<float>(data, DType.Float32, shape);

    /// <summary>A float64 tensor holding a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(double[] data, params int[] shape) => FromSpan<double>(data, DType.Float64, shape);

    /// <summary>An int32 tensor holding a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(int[] data, params int[] shape) => FromSpan<int>(data, DType.Int32, shape);

    /// <summary>An int64 tensor holding a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(long[] data, params int[] shape) => FromSpan<long>(data, DType.Int64, shape);

    /// <summary>A uint8 tensor holding a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(byte[] data, params int[] shape) => FromSpan<byte>(data, DType.UInt8, shape);

    /// <summary>A bool tensor holding a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(bool[] data, params int[] shape) =>
        FromSpan<byte>(data.Select(b => b ? (byte)1 : (byte)0).ToArray(), DType.Bool, shape);

    /// <summary>A tensor of <paramref name="dtype"/> from raw little-endian element bytes.</summary>
    public static Tensor FromBytes(ReadOnlySpan<byte> bytes, DType dtype, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        int n = Shapes.NumEl(shape);
        if ((long)n * dtype.SizeOf() != bytes.Length)
            throw new ShapeMismatchException(
                $"from_bytes: {bytes.Length} bytes cannot hold shape {Shapes.Format(shape)} of {dtype.TorchName()} "
                    + $"({(long)n * dtype.SizeOf()} bytes needed)"
            );
        var t = Empty(shape, dtype);
        bytes.CopyTo(new Span<byte>(t.BytePtr, bytes.Length));
        return t;
    }

    private static Tensor FromSpan<T>(ReadOnlySpan<T> data, DType dtype, int[] shape)
        where T : unmanaged
    {
        if (shape == null || shape.Length == 0)
            shape = [data.Length];
        int n = Shapes.NumEl(shape);
        if (n != data.Length)
            throw new ShapeMismatchException(
                $"from_array: {data.Length} elements cannot take shape {Shapes.Format(shape)} ({n} elements)"
            );
        var t = Empty(shape, dtype);
        data.CopyTo(t.Span<T>());
        return t;
    }

    /// <summary>A 0-dimensional tensor holding <paramref name="value"/>.</summary>
    public static Tensor Scalar(double value, DType dtype = DType.Float32) => Full([], value, dtype);

    /// <summary>Zeros of the given shape.</summary>
    public static Tensor Zeros(int[] shape, DType dtype = DType.Float32) => Empty(shape, dtype, zeroed: true);

    /// <summary>Ones of the given shape.</summary>
    public static Tensor Ones(int[] shape, DType dtype = DType.Float32) => Full(shape, 1, dtype);

    /// <summary>A tensor with every element equal to <paramref name="value"/>.</summary>
    public static Tensor Full(int[] shape, double value, DType dtype = DType.Float32)
    {
        var t = Empty(shape, dtype);
        t.FillRaw(value);
        return t;
    }

    /// <summary>Zeros shaped and typed like <paramref name="like"/>.</summary>
    public static Tensor ZerosLike(Tensor like) => Empty(like._shape, like.DType, like.Device, zeroed: true);

    /// <summary>Ones shaped and typed like <paramref name="like"/>.</summary>
    public static Tensor OnesLike(Tensor like)
    {
        var t = Empty(like._shape, like.DType, like.Device);
        t.FillRaw(1);
        return t;
    }

    /// <summary>Values start, start+step, ... below end (1-D).</summary>
    public static Tensor Arange(double start, double end, double step = 1, DType dtype = DType.Int64)
    {
        if (step == 0)
            throw new ArgumentException("arange: step must be non-zero", nameof(step));
        long n = (long)Math.Ceiling((end - start) / step);
        if (n < 0)
            n = 0;
        var t = Empty([checked((int)n)], dtype);
        byte* p = t.BytePtr;
        for (long i = 0; i < n; i++)
            CastKernels.Write(p, dtype, i, start + i * step);
        return t;
    }

    /// <summary>Values 0..end-1 (1-D, int64).</summary>
    public static Tensor Arange(int end) => Arange(0, end);

    /// <summary><paramref name="steps"/> evenly spaced values from start to end inclusive.</summary>
    public static Tensor Linspace(double start, double end, int steps, DType dtype = DType.Float32)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(steps);
        var t = Empty([steps], dtype);
        byte* p = t.BytePtr;
        double step = steps > 1 ? (end - start) / (steps - 1) : 0;
        for (int i = 0; i < steps; i++)
            CastKernels.Write(p, dtype, i, i < steps / 2 ? start + i * step : end - (steps - 1 - i) * step);
        return t;
    }

    /// <summary>An n×m identity (m defaults to n).</summary>
    public static Tensor Eye(int n, int? m = null, DType dtype = DType.Float32)
    {
        int cols = m ?? n;
        var t = Zeros([n, cols], dtype);
        byte* p = t.BytePtr;
        for (int i = 0; i < Math.Min(n, cols); i++)
            CastKernels.Write(p, dtype, (long)i * cols + i, 1);
        return t;
    }

    /// <summary>Uniform samples in [low, high) from <paramref name="generator"/> (the default one when null).</summary>
    public static Tensor Rand(
        int[] shape,
        DType dtype = DType.Float32,
        Generator? generator = null,
        double low = 0,
        double high = 1
    )
    {
        var g = generator ?? Generator.Default;
        var t = Empty(shape, dtype);
        int n = t.NumEl;
        ulong seed = g.Seed,
            start = g.Reserve(n);
        byte* p = t.BytePtr;
        double scale = high - low;
        CpuThreads.For(n, n * 8L, (a, b) =>
        {
            for (int i = a; i < b; i++)
            {
                uint bits = Philox.At(seed, start + (ulong)(i >> 2), i & 3);
                double u = dtype == DType.Float64 ? Philox.ToUniformDouble(bits) : Philox.ToUniform(bits);
                CastKernels.Write(p, dtype, i, low + scale * u);
            }
        });
        return t;
    }

    /// <summary>Standard normal samples (Box-Muller over Philox pairs) times <paramref name="std"/> plus <paramref
    /// name="mean"/>.</summary>
    public static Tensor Randn(
        int[] shape,
        DType dtype = DType.Float32,
        Generator? generator = null,
        double mean = 0,
        double std = 1
    )
    {
        var g = generator ?? Generator.Default;
        var t = Empty(shape, dtype);
        int n = t.NumEl;
        ulong seed = g.Seed,
            start = g.Reserve(n);
        byte* p = t.BytePtr;
        CpuThreads.For(n, n * 16L, (a, b) =>
        {
            for (int i = a; i < b; i++)
            {
                int lane = i & 3;
                var (x0, x1, x2, x3) = Philox.Block(
                    (uint)(start + (ulong)(i >> 2)),
                    (uint)((start + (ulong)(i >> 2)) >> 32),
                    0,
                    0,
                    (uint)seed,
                    (uint)(seed >> 32)
                );
                uint ua = lane < 2 ? x0 : x2,
                    ub = lane < 2 ? x1 : x3;
                // u1 in (0, 1] so the log is finite.
                double u1 = (ua + 1.0) / 4294967296.0,
                    u2 = ub / 4294967296.0;
                double r = Math.Sqrt(-2.0 * Math.Log(u1));
                double z = (lane & 1) == 0 ? r * Math.Cos(2 * Math.PI * u2) : r * Math.Sin(2 * Math.PI * u2);
                CastKernels.Write(p, dtype, i, mean + std * z);
            }
        });
        return t;
    }

    /// <summary>Uniform integers in [low, high).</summary>
    public static Tensor Randint(
        long low,
        long high,
        int[] shape,
        DType dtype = DType.Int64,
        Generator? generator = null
    )
    {
        if (high <= low)
            throw new ArgumentException($"randint: high ({high}) must be greater than low ({low})", nameof(high));
        var g = generator ?? Generator.Default;
        var t = Empty(shape, dtype);
        int n = t.NumEl;
        ulong seed = g.Seed,
            start = g.Reserve(n);
        ulong range = (ulong)(high - low);
        byte* p = t.BytePtr;
        for (int i = 0; i < n; i++)
        {
            uint bits = Philox.At(seed, start + (ulong)(i >> 2), i & 3);
            CastKernels.Write(p, dtype, i, low + (long)(bits % range));
        }
        return t;
    }

    /// <summary>Samples 1 with probability <paramref name="p"/> (0 otherwise); on <paramref name="device"/> when given
    /// (float32 there), with the same numbers as the CPU for the same generator state.</summary>
    public static Tensor Bernoulli(
        int[] shape,
        double p,
        DType dtype = DType.Float32,
        Generator? generator = null,
        Device? device = null
    )
    {
        if (p is < 0 or > 1)
            throw new ArgumentOutOfRangeException(nameof(p), $"bernoulli: p must be in [0, 1], got {p}");
        return BernoulliOn(shape, p, 1, dtype, generator, device ?? Device.Cpu);
    }

    /// <summary>value with probability p, else 0, drawn on the device from the generator's next numbers (dropout's
    /// scaled keep mask uses value = 1/(1−p)): element i takes Philox number i of the reserved block on every
    /// device.</summary>
    internal static Tensor BernoulliOn(
        int[] shape,
        double p,
        double value,
        DType dtype,
        Generator? generator,
        Device device
    )
    {
        var g = generator ?? Generator.Default;
        var t = Empty(shape, dtype, device);
        ulong seed = g.Seed,
            start = g.Reserve(t.NumEl);
        t.Backend.Bernoulli(t, g, seed, start, p, value);
        return t;
    }

    /// <summary>Copies the elements out, in row-major order, converted to <typeparamref name="T"/>'s dtype.</summary>
    public T[] ToArray<T>()
        where T : unmanaged
    {
        if (!IsCpu)
        {
            using var host = Ops.MoveNoGrad(this, Device.Cpu);
            return host.ToArray<T>();
        }
        var want =
            typeof(T) == typeof(float) ? DType.Float32
            : typeof(T) == typeof(double) ? DType.Float64
            : typeof(T) == typeof(int) ? DType.Int32
            : typeof(T) == typeof(long) ? DType.Int64
            : typeof(T) == typeof(byte) ? (DType == DType.Bool ? DType.Bool : DType.UInt8)
            : typeof(T) == typeof(Half) ? DType.Float16
            : throw new NotSupportedException($"ToArray<{typeof(T).Name}> is not supported");
        using var c = Ops.ToDType(this, want, forceCopy: false);
        using var cc = c.Contiguous();
        return cc.Span<T>().ToArray();
    }

    /// <summary>The raw element bytes in row-major order.</summary>
    public byte[] ToBytes()
    {
        if (!IsCpu)
        {
            using var host = Ops.MoveNoGrad(this, Device.Cpu);
            return host.ToBytes();
        }
        using var c = Contiguous();
        return new ReadOnlySpan<byte>(c.BytePtr, checked(c.NumEl * DType.SizeOf())).ToArray();
    }

    /// <summary>The value of a one-element tensor as a double.</summary>
    public double Item()
    {
        if (NumEl != 1)
            throw new ShapeMismatchException(
                $"item: only a one-element tensor has a value; this one has shape {Shapes.Format(_shape)}"
            );
        if (!IsCpu)
        {
            using var host = Ops.MoveNoGrad(this, Device.Cpu);
            return host.Item();
        }
        return CastKernels.Read(BytePtr, DType, 0);
    }

    /// <summary>Element at a multi-index, as a double (slow; for inspection and tests).</summary>
    [System.Runtime.CompilerServices.IndexerName("ElementAt")]
    public double this[params int[] index]
    {
        get
        {
            ArgumentNullException.ThrowIfNull(index);
            if (index.Length != Rank)
                throw new ArgumentException($"index of rank {index.Length} for a tensor of rank {Rank}", nameof(index));
            if (!IsCpu)
            {
                using var host = Ops.MoveNoGrad(this, Device.Cpu);
                return host[index];
            }
            long off = 0;
            for (int i = 0; i < Rank; i++)
            {
                if ((uint)index[i] >= (uint)_shape[i])
                    throw new IndexOutOfRangeException(
                        $"index {index[i]} out of range for dimension {i} of size {_shape[i]}"
                    );
                off += (long)index[i] * _strides[i];
            }
            return CastKernels.Read(BytePtr, DType, off);
        }
    }

    /// <summary>Writes <paramref name="value"/> into every element (any layout), without recording the graph.</summary>
    internal void FillRaw(double value)
    {
        if (!IsContiguous)
            throw new InvalidOperationException("internal: FillRaw on a non-contiguous tensor");
        Backend.Fill(this, value);
    }

    /// <summary>Reinterprets contiguous memory as a span, for interop (the tensor must stay alive).</summary>
    public ReadOnlySpan<T> AsReadOnlySpan<T>()
        where T : unmanaged
    {
        if (!IsContiguous)
            throw new InvalidOperationException("AsReadOnlySpan needs a contiguous tensor: call Contiguous() first");
        if (sizeof(T) != DType.SizeOf())
            throw new DTypeMismatchException($"AsReadOnlySpan<{typeof(T).Name}> on a {DType.TorchName()} tensor");
        return MemoryMarshal.CreateReadOnlySpan(ref *Ptr<T>(), NumEl);
    }
}
