using System.Buffers.Binary;
using System.Security.Cryptography;

namespace HpcEngine.Data.Sharded;

/// <summary>The shard file format (docs/DATASETS.md): a 64-byte little-endian header — magic "HPCSHARD", version
/// (u32), element type (u32: 1 uint8, 2 float32), sample count n (u32), bytes per sample s (u32), index of the first
/// sample within its split (u64), offset of the labels (u64) — then the n samples, fixed size, back to back from
/// offset 64 (sample i at 64 + i·s: the index is arithmetic), then n int32 labels at the 8-aligned labels offset.
/// Fixed-size records make a shard a memory-mappable array: no parsing at load.</summary>
public static class ShardFile
{
    /// <summary>The header's size; samples start here.</summary>
    public const int HeaderBytes = 64;

    /// <summary>The format version this build writes and reads.</summary>
    public const uint Version = 1;

    private static ReadOnlySpan<byte> Magic => "HPCSHARD"u8;

    /// <summary>Element type codes.</summary>
    public const uint UInt8 = 1,
        Float32 = 2;

    /// <summary>Where the labels start in a shard of <paramref name="samples"/> samples of
    /// <paramref name="sampleBytes"/> bytes.</summary>
    public static long LabelsOffset(int samples, int sampleBytes) =>
        (HeaderBytes + (long)samples * sampleBytes + 7) & ~7L;

    /// <summary>The file size of such a shard.</summary>
    public static long FileBytes(int samples, int sampleBytes) => LabelsOffset(samples, sampleBytes) + 4L * samples;

    /// <summary>Writes a shard to <paramref name="path"/> (through a temporary file renamed into place, so a shard
    /// is never seen half-written) and returns its entry for the manifest.</summary>
    public static ShardEntry Write(
        string path,
        uint elementType,
        int sampleBytes,
        ReadOnlySpan<byte> samples,
        ReadOnlySpan<int> labels,
        long firstIndex
    )
    {
        ArgumentNullException.ThrowIfNull(path);
        int n = labels.Length;
        if (samples.Length != (long)n * sampleBytes)
            throw new ArgumentException($"shard: {samples.Length} sample bytes for {n} samples of {sampleBytes}");
        long labelsAt = LabelsOffset(n, sampleBytes);
        var header = new byte[HeaderBytes];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), Version);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), elementType);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), (uint)n);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), (uint)sampleBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(24), (ulong)firstIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(32), (ulong)labelsAt);
        var labelBytes = new byte[4 * n];
        for (int i = 0; i < n; i++)
            BinaryPrimitives.WriteInt32LittleEndian(labelBytes.AsSpan(4 * i), labels[i]);
        var padding = new byte[labelsAt - HeaderBytes - samples.Length];
        string temp = path + ".partial";
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            foreach (var part in new[] { header, samples.ToArray(), padding, labelBytes })
            {
                f.Write(part);
                sha.AppendData(part);
            }
        }
        File.Move(temp, path, overwrite: true);
        return new ShardEntry
        {
            File = Path.GetFileName(path),
            Samples = n,
            Bytes = labelsAt + labelBytes.Length,
            Sha256 = Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant(),
        };
    }

    /// <summary>Checks a mapped shard's header against what the manifest says it holds; a typed error names the
    /// shard.</summary>
    internal static void CheckHeader(string path, ReadOnlySpan<byte> file, ShardEntry entry, uint type, int sampleBytes)
    {
        string Bad(string what) =>
            $"{what}: the shard is damaged or from another dataset; prepare the dataset again (hpcengine data prepare)";
        if (file.Length != entry.Bytes)
            throw new DatasetException(
                path,
                DatasetProblem.CorruptShard,
                Bad($"{file.Length} bytes where the manifest records {entry.Bytes}")
            );
        if (file.Length < HeaderBytes || !file[..8].SequenceEqual(Magic))
            throw new DatasetException(path, DatasetProblem.CorruptShard, Bad("not a shard (bad magic)"));
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(file[8..]);
        if (version != Version)
            throw new DatasetException(
                path,
                DatasetProblem.FutureVersion,
                $"shard format version {version} is not {Version}"
            );
        uint t = BinaryPrimitives.ReadUInt32LittleEndian(file[12..]);
        uint n = BinaryPrimitives.ReadUInt32LittleEndian(file[16..]);
        uint s = BinaryPrimitives.ReadUInt32LittleEndian(file[20..]);
        ulong labels = BinaryPrimitives.ReadUInt64LittleEndian(file[32..]);
        if (t != type || n != entry.Samples || s != sampleBytes || (long)labels != LabelsOffset((int)n, (int)s))
            throw new DatasetException(
                path,
                DatasetProblem.CorruptShard,
                Bad($"header says {n} samples of {s} bytes (type {t}); the manifest {entry.Samples} of {sampleBytes}")
            );
    }
}
