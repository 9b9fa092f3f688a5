using System.Numerics;
using System.Runtime.InteropServices;

namespace HpcEngine;

/// <summary>One 16-bit float format's conversions, as struct operators (TensorPrimitives' pattern): the vector form
/// on float32 bits held in uint lanes, and the element form for the tail.</summary>
internal interface ISixteenBitFormat
{
    static abstract Vector<uint> Narrow(Vector<uint> floatBits);
    static abstract ushort Narrow(float value);
    static abstract Vector<uint> Widen(Vector<uint> bits);
    static abstract float Widen(ushort bits);
}

/// <summary>The one driver for every 16-bit format: SIMD over whole vectors, the element form for the rest.</summary>
internal static class SixteenBitSpans
{
    public static void Narrow<TFormat>(ReadOnlySpan<float> source, Span<ushort> destination)
        where TFormat : ISixteenBitFormat
    {
        if (destination.Length < source.Length)
            throw new ArgumentException("destination is shorter than the source", nameof(destination));
        var u = MemoryMarshal.Cast<float, uint>(source);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int w = Vector<uint>.Count;
            for (; i + 2 * w <= u.Length; i += 2 * w)
                Vector
                    .Narrow(
                        TFormat.Narrow(new Vector<uint>(u.Slice(i, w))),
                        TFormat.Narrow(new Vector<uint>(u.Slice(i + w, w)))
                    )
                    .CopyTo(destination.Slice(i, 2 * w));
        }
        for (; i < source.Length; i++)
            destination[i] = TFormat.Narrow(source[i]);
    }

    public static void Widen<TFormat>(ReadOnlySpan<ushort> source, Span<float> destination)
        where TFormat : ISixteenBitFormat
    {
        if (destination.Length < source.Length)
            throw new ArgumentException("destination is shorter than the source", nameof(destination));
        var d = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int w = Vector<ushort>.Count;
            for (; i + w <= source.Length; i += w)
            {
                Vector.Widen(new Vector<ushort>(source.Slice(i, w)), out var lo, out var hi);
                TFormat.Widen(lo).CopyTo(d.Slice(i, w / 2));
                TFormat.Widen(hi).CopyTo(d.Slice(i + w / 2, w / 2));
            }
        }
        for (; i < source.Length; i++)
            destination[i] = TFormat.Widen(source[i]);
    }
}
