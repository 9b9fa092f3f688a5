namespace HpcEngine.Data;

/// <summary>Which samples each rank visits in an epoch, as torch.utils.data.DistributedSampler does: a permutation of
/// 0..n−1 fixed by (seed, epoch) — the same on every rank — padded by repeating its head to a multiple of the world
/// size, then dealt round-robin. Shards have equal length and together cover every sample at least once.</summary>
public static class Sampler
{
    /// <summary>A permutation of 0..n−1 (identity when <paramref name="shuffle"/> is false), Fisher-Yates over the
    /// Philox stream keyed by <paramref name="seed"/> at counter block (epoch · 2^32 + i).</summary>
    public static int[] Permutation(int n, bool shuffle, ulong seed, int epoch)
    {
        var p = new int[n];
        for (int i = 0; i < n; i++)
            p[i] = i;
        if (!shuffle)
            return p;
        ulong baseCounter = (ulong)(uint)epoch << 32;
        for (int i = n - 1; i > 0; i--)
        {
            var (a, b, _, _) = Philox.Block(
                (uint)(baseCounter + (ulong)i),
                (uint)((baseCounter + (ulong)i) >> 32),
                0x5A3D,
                0,
                (uint)seed,
                (uint)(seed >> 32)
            );
            ulong r = ((ulong)a << 32) | b;
            int j = (int)(r % (ulong)(i + 1));
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }

    /// <summary>The samples of <paramref name="rank"/> out of <paramref name="worldSize"/> for an epoch, from global
    /// position <paramref name="start"/> on: the permutation's samples [start, n) dealt round-robin, rank r taking
    /// perm[start + r + k·W]. With start 0 that is the whole epoch; a run whose world size changes mid-epoch calls it
    /// again with the samples already consumed (k steps of b per rank at W ranks consume exactly perm[0, k·b·W)), so
    /// every sample of the epoch is still seen once. The shards are padded, by wrapping round to the permutation's
    /// head, to equal length (fewer than W extra samples), as DistributedSampler pads.</summary>
    public static int[] Shard(int n, int rank, int worldSize, bool shuffle, ulong seed, int epoch, int start = 0)
    {
        if (worldSize < 1 || rank < 0 || rank >= worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is not in a world of size {worldSize}");
        if (start < 0 || (start > n && n > 0))
            throw new ArgumentOutOfRangeException(nameof(start), $"start {start} is outside the epoch's {n} samples");
        if (n == 0 || start == n)
            return [];
        return Deal(Permutation(n, shuffle, seed, epoch), rank, worldSize, start);
    }

    /// <summary>As <see cref="Shard"/>, over a given epoch order (a permutation of 0..n−1, the same on every
    /// rank).</summary>
    public static int[] Deal(int[] perm, int rank, int worldSize, int start = 0)
    {
        ArgumentNullException.ThrowIfNull(perm);
        int n = perm.Length;
        if (worldSize < 1 || rank < 0 || rank >= worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is not in a world of size {worldSize}");
        if (start < 0 || (start > n && n > 0))
            throw new ArgumentOutOfRangeException(nameof(start), $"start {start} is outside the epoch's {n} samples");
        if (n == 0 || start == n)
            return [];
        int per = (n - start + worldSize - 1) / worldSize;
        var shard = new int[per];
        for (int k = 0; k < per; k++)
            shard[k] = perm[(start + rank + (long)k * worldSize) % n];
        return shard;
    }
}
