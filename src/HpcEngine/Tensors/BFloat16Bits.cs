using System.Numerics;
using System.Runtime.CompilerServices;

namespace HpcEngine;

/// <summary>bfloat16 as raw bits: the top half of an IEEE float32. Rounding is to nearest even, NaN stays NaN;
/// the CUDA kernels use the same rule so both backends store identical bits.</summary>
internal static class BFloat16Bits
{
    /// <summary>Rounds a float32 to bf16 bits (round to nearest, ties to even).</summary>
    public static ushort FromSingle(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
            return (ushort)((u >> 16) | 0x40);
        uint lsb = (u >> 16) & 1;
        u += 0x7FFFu + lsb;
        return (ushort)(u >> 16);
    }

    /// <summary>Widens bf16 bits to float32 (exact).</summary>
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary><see cref="FromSingle(float)"/> over a span, with SIMD: the same bits, element for element.</summary>
    public static void FromSingle(ReadOnlySpan<float> source, Span<ushort> destination) =>
        SixteenBitSpans.Narrow<Format>(source, destination);

    /// <summary><see cref="ToSingle(ushort)"/> over a span, with SIMD.</summary>
    public static void ToSingle(ReadOnlySpan<ushort> source, Span<float> destination) =>
        SixteenBitSpans.Widen<Format>(source, destination);

    private readonly struct Format : ISixteenBitFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] // large for the inliner; the driver loop must not call it
        public static Vector<uint> Narrow(Vector<uint> x)
        {
            var nearest = (x + new Vector<uint>(0x7FFFu) + ((x >> 16) & Vector<uint>.One)) >> 16;
            var nan = Vector.GreaterThan(x & new Vector<uint>(0x7FFFFFFFu), new Vector<uint>(0x7F800000u));
            return Vector.ConditionalSelect(nan, (x >> 16) | new Vector<uint>(0x40u), nearest);
        }

        public static ushort Narrow(float value) => FromSingle(value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector<uint> Widen(Vector<uint> bits) => bits << 16;

        public static float Widen(ushort bits) => ToSingle(bits);
    }

    /// <summary>Widens 16-bit floats (bf16, or IEEE fp16 when <paramref name="bf16"/> is false) to float32.</summary>
    public static void Widen(ReadOnlySpan<ushort> source, Span<float> destination, bool bf16)
    {
        if (bf16)
            ToSingle(source, destination);
        else
            HalfBits.ToSingle(source, destination);
    }

    /// <summary>Rounds float32 to 16-bit floats (nearest even), bf16 or IEEE fp16.</summary>
    public static void Narrow(ReadOnlySpan<float> source, Span<ushort> destination, bool bf16)
    {
        if (bf16)
            FromSingle(source, destination);
        else
            HalfBits.FromSingle(source, destination);
    }
}
