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
}
