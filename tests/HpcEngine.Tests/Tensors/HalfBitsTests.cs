namespace HpcEngine.Tests.Tensors;

/// <summary>The SIMD 16-bit conversions give the element casts' bits: every fp16 value widens exactly, and float32
/// values of every kind (normal, subnormal results, overflow, ties at every rounding boundary) narrow
/// identically.</summary>
[TestFixture]
public class HalfBitsTests
{
    private static float[] Floats()
    {
        var rng = new Random(7);
        var list = new List<float>
        {
            0f,
            -0f,
            float.Epsilon,
            -float.Epsilon,
            float.MaxValue,
            float.MinValue,
            float.PositiveInfinity,
            float.NegativeInfinity,
            65504f,
            65519.99f,
            65520f,
            65536f,
            6.1035156e-5f,
            5.9604645e-8f,
            2.9802322e-8f,
            2.9802326e-8f,
            1e-10f,
            1f,
            -1f,
            1.0009766f,
        };
        // Every fp16 value, and the float32 values half-way between neighbours (ties) and just off them.
        for (int h = 0; h < 0x7C00; h++)
        {
            float a = (float)BitConverter.UInt16BitsToHalf((ushort)h),
                b = (float)BitConverter.UInt16BitsToHalf((ushort)(h + 1));
            float mid = (float)(((double)a + b) / 2);
            list.AddRange([
                a,
                -a,
                mid,
                -mid,
                BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(mid) + 1),
                BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(mid) - 1),
            ]);
        }
        for (int i = 0; i < 100_000; i++)
            list.Add(BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(0, 1L << 32)));
        return list.Where(f => !float.IsNaN(f)).ToArray();
    }

    [Test]
    public void Narrowing_matches_the_element_cast_bit_for_bit()
    {
        var f = Floats();
        var got = new ushort[f.Length];
        HalfBits.FromSingle(f, got);
        for (int i = 0; i < f.Length; i++)
        {
            ushort want = BitConverter.HalfToUInt16Bits((Half)f[i]);
            if (got[i] != want)
                Assert.Fail(
                    $"{f[i]:R} (0x{BitConverter.SingleToUInt32Bits(f[i]):X8}): 0x{got[i]:X4}, the cast gives "
                        + $"0x{want:X4}"
                );
        }
        var nan = new ushort[64];
        HalfBits.FromSingle(Enumerable.Repeat(float.NaN, 64).ToArray(), nan);
        Assert.That(nan.All(h => Half.IsNaN(BitConverter.UInt16BitsToHalf(h))), Is.True);
    }

    [Test]
    public void Widening_every_fp16_value_matches_the_element_cast()
    {
        var all = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var got = new float[all.Length];
        HalfBits.ToSingle(all, got);
        for (int i = 0; i < all.Length; i++)
        {
            float want = (float)BitConverter.UInt16BitsToHalf(all[i]);
            if (float.IsNaN(want))
                Assert.That(float.IsNaN(got[i]), Is.True, $"0x{i:X4}");
            else if (BitConverter.SingleToUInt32Bits(got[i]) != BitConverter.SingleToUInt32Bits(want))
                Assert.Fail($"0x{i:X4}: {got[i]:R}, the cast gives {want:R}");
        }
    }

    [Test]
    public void Bfloat16_span_conversions_match_the_element_ones()
    {
        var f = Floats().Concat([float.NaN, -float.NaN]).ToArray();
        var got = new ushort[f.Length];
        BFloat16Bits.FromSingle(f, got);
        var back = new float[f.Length];
        BFloat16Bits.ToSingle(got, back);
        for (int i = 0; i < f.Length; i++)
        {
            Assert.That(got[i], Is.EqualTo(BFloat16Bits.FromSingle(f[i])), $"{f[i]:R}");
            Assert.That(
                BitConverter.SingleToUInt32Bits(back[i]),
                Is.EqualTo(BitConverter.SingleToUInt32Bits(BFloat16Bits.ToSingle(got[i])))
            );
        }
    }
}
