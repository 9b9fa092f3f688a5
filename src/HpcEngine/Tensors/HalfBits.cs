using System.Numerics;
using System.Runtime.CompilerServices;

namespace HpcEngine;

/// <summary>IEEE fp16 ⇄ float32 over spans with SIMD (any <see cref="Vector{T}"/> width), bit-identical to .NET's
/// element casts for every finite value, infinity and zero (NaN stays NaN, quiet). Why not TensorPrimitives'
/// ConvertToHalf: measured at about 5 ns an element here, it made a 1M-element fp16 allreduce 6x slower than the fp32
/// one it was meant to halve. The bit tricks are F. Giesen's branch-free conversions ("half_to_float" and
/// "float_to_half_fast3_rtne"), with the branches turned into selects.</summary>
internal static class HalfBits
{
    /// <summary>Rounds float32 to fp16 bits, to nearest even.</summary>
    public static void FromSingle(ReadOnlySpan<float> source, Span<ushort> destination) =>
        SixteenBitSpans.Narrow<Format>(source, destination);

    /// <summary>Widens fp16 bits to float32 (exact).</summary>
    public static void ToSingle(ReadOnlySpan<ushort> source, Span<float> destination) =>
        SixteenBitSpans.Widen<Format>(source, destination);

    private readonly struct Format : ISixteenBitFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)] // large for the inliner; the driver loop must not call it
        public static Vector<uint> Narrow(Vector<uint> bits)
        {
            var sign = bits & new Vector<uint>(0x80000000u);
            var f = bits ^ sign;
            // Too large for fp16 (→ infinity) or infinity/NaN (→ infinity / quiet NaN).
            var big = Vector.GreaterThanOrEqual(f, new Vector<uint>(0x47800000u));
            var nan = Vector.GreaterThan(f, new Vector<uint>(0x7F800000u));
            var overflow = Vector.ConditionalSelect(nan, new Vector<uint>(0x7E00u), new Vector<uint>(0x7C00u));
            // Subnormal results: adding 0.5 (2^-1: exponent 126) lets the FPU's own round-to-nearest-even shift the
            // mantissa into place.
            var magic = new Vector<uint>(126u << 23);
            var tiny = Vector.LessThan(f, new Vector<uint>(0x38800000u));
            var sub = Vector.AsVectorUInt32(Vector.AsVectorSingle(f) + Vector.AsVectorSingle(magic)) - magic;
            // Normal results: rebias the exponent and round the 13 dropped bits to nearest even.
            var odd = (f >> 13) & Vector<uint>.One;
            var normal = (f + new Vector<uint>(unchecked((uint)((15 - 127) << 23) + 0xFFFu)) + odd) >> 13;
            var r = Vector.ConditionalSelect(big, overflow, Vector.ConditionalSelect(tiny, sub, normal));
            return r | (sign >> 16);
        }

        public static ushort Narrow(float value) => BitConverter.HalfToUInt16Bits((Half)value);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector<uint> Widen(Vector<uint> h)
        {
            var shiftedExp = new Vector<uint>(0x7C00u << 13);
            var o = (h & new Vector<uint>(0x7FFFu)) << 13;
            var exp = o & shiftedExp;
            o += new Vector<uint>((127u - 15u) << 23);
            var infNan = Vector.Equals(exp, shiftedExp);
            var zeroSub = Vector.Equals(exp, Vector<uint>.Zero);
            var magic = new Vector<uint>(113u << 23);
            var adjusted = Vector.AsVectorUInt32(
                Vector.AsVectorSingle(o + new Vector<uint>(1u << 23)) - Vector.AsVectorSingle(magic)
            );
            o = Vector.ConditionalSelect(
                infNan,
                o + new Vector<uint>((128u - 16u) << 23),
                Vector.ConditionalSelect(zeroSub, adjusted, o)
            );
            return o | ((h & new Vector<uint>(0x8000u)) << 16);
        }

        public static float Widen(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);
    }
}
