namespace HpcEngine;

/// <summary>Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based
/// generator. Output block <c>c</c> is a pure function of (key, counter), so any element of a random tensor can be
/// computed independently — by a CPU thread or a CUDA thread — and both backends produce the same stream.</summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53,
        M1 = 0xCD9E8D57,
        W0 = 0x9E3779B9,
        W1 = 0xBB67AE85;

    /// <summary>The four 32-bit outputs for counter (c0..c3) and key (k0, k1).</summary>
    public static (uint, uint, uint, uint) Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            ulong p0 = (ulong)M0 * c0,
                p1 = (ulong)M1 * c2;
            uint hi0 = (uint)(p0 >> 32),
                lo0 = (uint)p0,
                hi1 = (uint)(p1 >> 32),
                lo1 = (uint)p1;
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
            k0 += W0;
            k1 += W1;
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>One 32-bit output of the stream: lane <paramref name="lane"/> of the block at
    /// <paramref name="counter"/> (a 64-bit value in c0, c1) under the key <paramref name="seed"/>.</summary>
    public static uint At(ulong seed, ulong counter, int lane)
    {
        var (a, b, c, d) = Block((uint)counter, (uint)(counter >> 32), 0, 0, (uint)seed, (uint)(seed >> 32));
        return lane switch
        {
            0 => a,
            1 => b,
            2 => c,
            _ => d,
        };
    }

    /// <summary>Maps 32 random bits to a float in [0, 1) with 24 bits of precision.</summary>
    public static float ToUniform(uint bits) => (bits >> 8) * (1.0f / 16777216.0f);

    /// <summary>Maps 32 random bits to a double in [0, 1) (32 bits of precision).</summary>
    public static double ToUniformDouble(uint bits) => bits * (1.0 / 4294967296.0);
}

/// <summary>A seeded random stream: a Philox key (the seed) and a counter offset that advances as numbers are drawn.
/// Two generators with the same seed and offset draw the same numbers on any backend; the state is two integers, so
/// checkpoints save it exactly.</summary>
public sealed class Generator
{
    /// <summary>The generator ops use when none is passed; reseed it with <see cref="ManualSeed"/>.</summary>
    public static Generator Default { get; } = new(0x5EED);

    /// <summary>The key.</summary>
    public ulong Seed { get; private set; }

    /// <summary>Philox blocks (4 numbers each) consumed so far.</summary>
    public ulong Offset { get; set; }

    /// <summary>A generator at the start of the stream for <paramref name="seed"/>.</summary>
    public Generator(ulong seed) => Seed = seed;

    /// <summary>Restarts the stream for a new seed.</summary>
    public void ManualSeed(ulong seed)
    {
        Seed = seed;
        Offset = 0;
    }

    /// <summary>Reserves <paramref name="count"/> 32-bit numbers; returns the first block's counter. Rounds up to whole
    /// blocks so the next draw starts at a fresh block, exactly as the CUDA kernels reserve.</summary>
    internal ulong Reserve(long count)
    {
        ulong start = Offset;
        Offset += (ulong)((count + 3) / 4);
        return start;
    }
}
