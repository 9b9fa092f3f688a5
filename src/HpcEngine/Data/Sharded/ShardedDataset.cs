using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;

namespace HpcEngine.Data.Sharded;

/// <summary>One split of a prepared dataset (<c>hpcengine data prepare</c>), streamed from its memory-mapped shards:
/// nothing is copied at open, and a rank touches only the pages of the samples it reads. Opening checks the manifest
/// and every shard's header, and (by default) re-hashes each shard against the manifest's SHA-256, so changed bytes
/// are named before training starts. The epoch order (<see cref="Order"/>) shuffles the shards and then the samples
/// within a bounded window, a function of (seed, epoch) only; the loader deals it over the ranks from a global sample
/// cursor, so a resume at another world size still sees each sample once.</summary>
public sealed unsafe class ShardedDataset : Dataset
{
    private readonly List<(MemoryMappedFile File, MemoryMappedViewAccessor View, nint Base)> _maps = [];
    private readonly long[] _starts; // first sample index of each shard
    private readonly int _sampleBytes;
    private readonly int[] _shape;
    private readonly PixelNormalization? _normalization;
    private readonly string _identity;
    private readonly string _preprocessing;

    /// <summary>The dataset's manifest.</summary>
    public DatasetManifest Manifest { get; }

    /// <summary>The split this dataset reads ("train" or "test").</summary>
    public string Split { get; }

    /// <summary>Samples shuffled together within one window of the epoch order (after the shards are
    /// shuffled).</summary>
    public int ShuffleWindow { get; }

    /// <inheritdoc/>
    public override int Count { get; }

    /// <inheritdoc/>
    public override int Classes => Manifest.Classes.Count;

    /// <inheritdoc/>
    public override IReadOnlyList<int> SampleShape => _shape;

    /// <inheritdoc/>
    public override bool IsPixels { get; }

    /// <inheritdoc/>
    public override PixelNormalization? Normalization => _normalization;

    /// <inheritdoc/>
    public override string? Preprocessing => _preprocessing;

    /// <inheritdoc/>
    public override IReadOnlyList<string>? ClassNames => Manifest.Classes;

    private ShardedDataset(string dir, DatasetManifest manifest, string split, bool verify, int shuffleWindow)
    {
        Manifest = manifest;
        Split = split;
        ShuffleWindow = shuffleWindow;
        if (!manifest.Splits.TryGetValue(split, out var entry))
            throw new DatasetException(
                Path.Combine(dir, DatasetManifest.FileName),
                DatasetProblem.NoSamples,
                $"no '{split}' split (the dataset has {string.Join(", ", manifest.Splits.Keys)})"
            );
        IsPixels = manifest.Feature.DType == "uint8";
        if (!IsPixels && manifest.Feature.DType != "float32")
            throw new DatasetException(dir, DatasetProblem.BadManifest, $"unknown dtype '{manifest.Feature.DType}'");
        _shape = [.. manifest.Feature.Shape];
        if (IsPixels && _shape.Length != 3)
            throw new DatasetException(dir, DatasetProblem.BadManifest, "uint8 samples must be images [C, H, W]");
        if (manifest.Feature is { Mean: { } mean, Std: { } std })
            _normalization = new PixelNormalization(mean, std);
        _sampleBytes = SampleBytes;
        _preprocessing =
            manifest.Preprocessing.ValueKind == System.Text.Json.JsonValueKind.Undefined
                ? "{}"
                : manifest.Preprocessing.GetRawText();
        _starts = new long[entry.Shards.Count + 1];
        try
        {
            Map(dir, entry, verify);
        }
        catch
        {
            Dispose();
            throw;
        }
        Count = (int)_starts[^1];
        if (Count != entry.Samples)
            throw new DatasetException(
                dir,
                DatasetProblem.BadManifest,
                $"the '{split}' shards hold {Count} samples, the split records {entry.Samples}"
            );
        var ids = new StringBuilder();
        foreach (var s in entry.Shards)
            ids.Append(s.Sha256);
        _identity = ImageDataset.Identity(Count, Encoding.ASCII.GetBytes(ids.ToString()), []);
    }

    /// <summary>Opens the <paramref name="split"/> of the dataset in <paramref name="dir"/>; with
    /// <paramref name="verify"/>, every shard is re-hashed (in parallel) and a changed one is named.</summary>
    public static ShardedDataset Open(
        string dir,
        string split = "train",
        bool verify = true,
        int shuffleWindow = 1 << 16
    )
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentOutOfRangeException.ThrowIfLessThan(shuffleWindow, 1);
        return new ShardedDataset(dir, DatasetManifest.Read(dir), split, verify, shuffleWindow);
    }

    private void Map(string dir, SplitEntry entry, bool verify)
    {
        uint type = IsPixels ? ShardFile.UInt8 : ShardFile.Float32;
        for (int k = 0; k < entry.Shards.Count; k++)
        {
            var shard = entry.Shards[k];
            string path = Path.Combine(dir, shard.File);
            if (shard.File.Contains('/') || shard.File.Contains('\\') || !File.Exists(path))
                throw new DatasetException(
                    path,
                    DatasetProblem.CorruptShard,
                    "shard missing; prepare the dataset again (hpcengine data prepare)"
                );
            var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            var view = file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _maps.Add((file, view, (nint)(p + view.PointerOffset)));
            long length = new FileInfo(path).Length;
            ShardFile.CheckHeader(
                path,
                new ReadOnlySpan<byte>((byte*)_maps[^1].Base, (int)Math.Min(length, int.MaxValue)),
                shard,
                type,
                _sampleBytes
            );
            _starts[k + 1] = _starts[k] + shard.Samples;
        }
        if (!verify)
            return;
        var bad = new string?[entry.Shards.Count];
        System.Threading.Tasks.Parallel.For(0, entry.Shards.Count, k =>
        {
            var span = new ReadOnlySpan<byte>((byte*)_maps[k].Base, (int)entry.Shards[k].Bytes);
            string hash = Convert.ToHexString(SHA256.HashData(span)).ToLowerInvariant();
            if (hash != entry.Shards[k].Sha256)
                bad[k] = Path.Combine(dir, entry.Shards[k].File);
        });
        if (bad.FirstOrDefault(b => b != null) is { } changed)
            throw new DatasetException(
                changed,
                DatasetProblem.ChecksumMismatch,
                "SHA-256 does not match the manifest: the shard's bytes changed after it was written; prepare the "
                    + "dataset again (hpcengine data prepare), or check the disk"
            );
    }

    private (int Shard, long Offset) Locate(int index)
    {
        if ((uint)index >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"sample {index} of {Count}");
        int k = Array.BinarySearch(_starts, index);
        if (k < 0)
            k = ~k - 1;
        while (_starts[k + 1] == _starts[k]) // an empty shard starts where the next does
            k++;
        return (k, index - _starts[k]);
    }

    /// <inheritdoc/>
    public override ReadOnlySpan<byte> Sample(int index)
    {
        var (k, i) = Locate(index);
        return new ReadOnlySpan<byte>((byte*)_maps[k].Base + ShardFile.HeaderBytes + i * _sampleBytes, _sampleBytes);
    }

    /// <inheritdoc/>
    public override long Label(int index)
    {
        var (k, i) = Locate(index);
        long shardSamples = _starts[k + 1] - _starts[k];
        return ((int*)((byte*)_maps[k].Base + ShardFile.LabelsOffset((int)shardSamples, _sampleBytes)))[i];
    }

    /// <summary>The epoch's order: the shards in an order drawn from (seed, epoch), their samples concatenated, then
    /// each run of <see cref="ShuffleWindow"/> samples permuted (a bounded shuffle buffer, as WebDataset and MosaicML
    /// Streaming shuffle). With one shard and one window it is <see cref="Sampler.Permutation"/> itself, the order the
    /// in-memory path takes.</summary>
    public override int[] Order(bool shuffle, ulong seed, int epoch)
    {
        var order = new int[Count];
        int shards = _starts.Length - 1;
        var shardOrder = Sampler.Permutation(shards, shuffle && shards > 1, Mix(seed, ulong.MaxValue), epoch);
        int at = 0;
        foreach (int k in shardOrder)
            for (long i = _starts[k]; i < _starts[k + 1]; i++)
                order[at++] = (int)i;
        if (!shuffle)
            return order;
        for (int w = 0; (long)w * ShuffleWindow < Count; w++)
        {
            int start = w * ShuffleWindow,
                length = Math.Min(ShuffleWindow, Count - start);
            var perm = Sampler.Permutation(length, true, w == 0 ? seed : Mix(seed, (ulong)w), epoch);
            var window = order.AsSpan(start, length).ToArray();
            for (int i = 0; i < length; i++)
                order[start + i] = window[perm[i]];
        }
        return order;
    }

    private static ulong Mix(ulong seed, ulong stream) =>
        (seed ^ (stream * 0x9E3779B97F4A7C15UL)) + 0xD1B54A32D192ED03UL;

    /// <inheritdoc/>
    public override string Identity() => _identity;

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        foreach (var (file, view, _) in _maps)
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
            view.Dispose();
            file.Dispose();
        }
        _maps.Clear();
    }
}
