using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace HpcEngine.Backends.Cpu;

/// <summary>Copies between layouts and conversions between dtypes.</summary>
internal static unsafe class CastKernels
{
    /// <summary>Copies <paramref name="src"/> into <paramref name="dst"/> (same shape and dtype, any
    /// strides).</summary>
    public static void CopyStrided(Tensor src, Tensor dst)
    {
        int es = src.DType.SizeOf();
        byte* s = src.BytePtr,
            d = dst.BytePtr;
        var loop = new StridedLoop(dst.Shape, dst.Strides.ToArray(), src.Strides.ToArray());
        int sd = loop.Stride0,
            ss = loop.Stride1;
        loop.Run(
            (od, os, _, n) =>
            {
                byte* pd = d + (long)od * es,
                    ps = s + (long)os * es;
                if (sd == 1 && ss == 1)
                {
                    Buffer.MemoryCopy(ps, pd, (long)n * es, (long)n * es);
                    return;
                }
                switch (es)
                {
                    case 4:
                        for (int i = 0; i < n; i++)
                            ((int*)pd)[(long)i * sd] = ((int*)ps)[(long)i * ss];
                        break;
                    case 8:
                        for (int i = 0; i < n; i++)
                            ((long*)pd)[(long)i * sd] = ((long*)ps)[(long)i * ss];
                        break;
                    case 2:
                        for (int i = 0; i < n; i++)
                            ((short*)pd)[(long)i * sd] = ((short*)ps)[(long)i * ss];
                        break;
                    default:
                        for (int i = 0; i < n; i++)
                            pd[(long)i * sd] = ps[(long)i * ss];
                        break;
                }
            }
        );
    }

    /// <summary>Converts a contiguous tensor's elements into a new contiguous tensor of dtype the destination dtype.
    /// Floats to integers truncate toward zero (as PyTorch does); anything to bool tests for non-zero.</summary>
    public static void Convert(Tensor src, Tensor dst)
    {
        int n = src.NumEl;
        DType from = src.DType,
            to = dst.DType;
        if (from == DType.Float32 && to == DType.Float64)
        {
            TensorPrimitives.ConvertChecked<float, double>(src.Span<float>(), dst.Span<double>());
            return;
        }
        if (from == DType.Float64 && to == DType.Float32)
        {
            TensorPrimitives.ConvertTruncating<double, float>(src.Span<double>(), dst.Span<float>());
            return;
        }
        if (from == DType.Float32 && to == DType.Float16)
        {
            HalfBits.FromSingle(src.Span<float>(), MemoryMarshal.Cast<Half, ushort>(dst.Span<Half>()));
            return;
        }
        if (from == DType.Float16 && to == DType.Float32)
        {
            HalfBits.ToSingle(MemoryMarshal.Cast<Half, ushort>(src.Span<Half>()), dst.Span<float>());
            return;
        }
        if (from == DType.Float32 && to == DType.BFloat16)
        {
            float* s = src.Ptr<float>();
            ushort* d = dst.Ptr<ushort>();
            CpuThreads.For(n, n, (a, b) =>
                BFloat16Bits.FromSingle(new ReadOnlySpan<float>(s + a, b - a), new Span<ushort>(d + a, b - a))
            );
            return;
        }
        if (from == DType.BFloat16 && to == DType.Float32)
        {
            ushort* s = src.Ptr<ushort>();
            float* d = dst.Ptr<float>();
            CpuThreads.For(n, n, (a, b) =>
                BFloat16Bits.ToSingle(new ReadOnlySpan<ushort>(s + a, b - a), new Span<float>(d + a, b - a))
            );
            return;
        }
        byte* ps = src.BytePtr,
            pd = dst.BytePtr;
        for (int i = 0; i < n; i++)
            Write(pd, to, i, Read(ps, from, i));
    }

    /// <summary>Reads element <paramref name="i"/> of a buffer of dtype <paramref name="t"/> as a double.</summary>
    public static double Read(byte* p, DType t, long i) =>
        t switch
        {
            DType.Float32 => ((float*)p)[i],
            DType.Float64 => ((double*)p)[i],
            DType.BFloat16 => BFloat16Bits.ToSingle(((ushort*)p)[i]),
            DType.Float16 => (float)((Half*)p)[i],
            DType.Int32 => ((int*)p)[i],
            DType.Int64 => ((long*)p)[i],
            DType.UInt8 => p[i],
            DType.Bool => p[i] != 0 ? 1 : 0,
            _ => throw new ArgumentOutOfRangeException(nameof(t)),
        };

    /// <summary>Writes a double into element <paramref name="i"/> of a buffer of dtype <paramref name="t"/>.</summary>
    public static void Write(byte* p, DType t, long i, double v)
    {
        switch (t)
        {
            case DType.Float32:
                ((float*)p)[i] = (float)v;
                break;
            case DType.Float64:
                ((double*)p)[i] = v;
                break;
            case DType.BFloat16:
                ((ushort*)p)[i] = BFloat16Bits.FromSingle((float)v);
                break;
            case DType.Float16:
                ((Half*)p)[i] = (Half)(float)v;
                break;
            case DType.Int32:
                ((int*)p)[i] = double.IsNaN(v) ? 0 : (int)Math.Clamp(Math.Truncate(v), int.MinValue, int.MaxValue);
                break;
            case DType.Int64:
                ((long*)p)[i] = double.IsNaN(v) ? 0 : (long)Math.Clamp(Math.Truncate(v), long.MinValue, long.MaxValue);
                break;
            case DType.UInt8:
                p[i] = unchecked((byte)(long)Math.Truncate(v));
                break;
            case DType.Bool:
                p[i] = v != 0 ? (byte)1 : (byte)0;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(t));
        }
    }
}
