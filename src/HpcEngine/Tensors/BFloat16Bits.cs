using System.Numerics;
using System.Runtime.InteropServices;

namespace HpcEngine;

/// <summary>bfloat16 as raw bits: the top half of an IEEE float32. Rounding is to nearest even, NaN stays NaN;
/// the CUDA kernels use the same rule so both backends store identical bits.</summary>
public static class BFloat16Bits
{
    /// <summary>Rounds a float32 to bf16 bits (round to nearest, ties to even).</summary>
    public static ushort FromSingle(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((u >> 16) | 0x40);
        uint lsb = (u >> 16) & 1;
        u += 0x7FFFu + lsb;
        return (ushort)(u >> 16);
    }

    /// <summary>Widens bf16 bits to float32 (exact).</summary>
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary><see cref="FromSingle(float)"/> over a span, with SIMD: the same bits, element for element.</summary>
    public static void FromSingle(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination is shorter than the source", nameof(destination));
        var u = MemoryMarshal.Cast<float, uint>(source);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int w = Vector<uint>.Count;
            var one = Vector<uint>.One;
            var round = new Vector<uint>(0x7FFFu);
            var quiet = new Vector<uint>(0x40u);
            var infinity = new Vector<uint>(0x7F800000u);
            var magnitude = new Vector<uint>(0x7FFFFFFFu);
            for (; i + 2 * w <= u.Length; i += 2 * w)
            {
                var lo = Round(new Vector<uint>(u.Slice(i, w)));
                var hi = Round(new Vector<uint>(u.Slice(i + w, w)));
                Vector.Narrow(lo, hi).CopyTo(destination.Slice(i, 2 * w));
            }
            Vector<uint> Round(Vector<uint> x)
            {
                var nearest = (x + round + ((x >> 16) & one)) >> 16;
                var nan = Vector.GreaterThan(x & magnitude, infinity);
                return Vector.ConditionalSelect(nan, (x >> 16) | quiet, nearest);
            }
        }
        for (; i < u.Length; i++) destination[i] = FromSingle(source[i]);
    }

    /// <summary><see cref="ToSingle(ushort)"/> over a span, with SIMD.</summary>
    public static void ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination is shorter than the source", nameof(destination));
        var d = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int w = Vector<ushort>.Count;
            for (; i + w <= source.Length; i += w)
            {
                Vector.Widen(new Vector<ushort>(source.Slice(i, w)), out var lo, out var hi);
                (lo << 16).CopyTo(d.Slice(i, w / 2));
                (hi << 16).CopyTo(d.Slice(i + w / 2, w / 2));
            }
        }
        for (; i < source.Length; i++) destination[i] = ToSingle(source[i]);
    }

    /// <summary>Widens 16-bit floats (bf16, or IEEE fp16 when <paramref name="bf16"/> is false) to float32.</summary>
    public static void Widen(ReadOnlySpan<ushort> source, Span<float> destination, bool bf16)
    {
        if (bf16) ToSingle(source, destination);
        else HalfBits.ToSingle(source, destination);
    }

    /// <summary>Rounds float32 to 16-bit floats (nearest even), bf16 or IEEE fp16.</summary>
    public static void Narrow(ReadOnlySpan<float> source, Span<ushort> destination, bool bf16)
    {
        if (bf16) FromSingle(source, destination);
        else HalfBits.FromSingle(source, destination);
    }
}
