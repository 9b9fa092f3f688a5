using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;

namespace HpcEngine.IO;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, DType DType, int[] Shape, long Begin, long End);

/// <summary>The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length
/// N, N bytes of UTF-8 JSON <c>{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}}</c>, then
/// the data buffer. Reading makes every check of the reference implementation, each a distinct <see
/// cref="SafetensorsCheck"/>; writing is atomic (temp file, fsync, rename).</summary>
public static class Safetensors
{
    /// <summary>The largest header the reference implementation accepts.</summary>
    public const long MaxHeaderLength = 100_000_000;

    /// <summary>Writes tensors (and optional string metadata) to <paramref name="path"/> atomically: a crash leaves
    /// either the old file or the complete new one.</summary>
    public static void Save(
        string path,
        IReadOnlyDictionary<string, Tensor> tensors,
        IReadOnlyDictionary<string, string>? metadata = null
    )
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToArray();
        using var header = new MemoryStream();
        long offset = 0;
        using (var w = new Utf8JsonWriter(header))
        {
            w.WriteStartObject();
            if (metadata != null && metadata.Count > 0)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                    w.WriteString(k, v);
                w.WriteEndObject();
            }
            foreach (var name in names)
            {
                if (name == "__metadata__")
                    throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor", nameof(tensors));
                var t = tensors[name];
                long bytes = (long)t.NumEl * t.DType.SizeOf();
                w.WriteStartObject(name);
                w.WriteString("dtype", t.DType.SafetensorsName());
                w.WriteStartArray("shape");
                foreach (int d in t.Shape)
                    w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        // Pad the header with spaces so the data buffer starts 8-byte aligned (as the reference writer does).
        while (header.Length % 8 != 0)
            header.WriteByte((byte)' ');

        string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        Directory.CreateDirectory(dir);
        string tmp = System.IO.Path.Combine(
            dir,
            $".{System.IO.Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp"
        );
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> len = stackalloc byte[8];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
                fs.Write(len);
                header.Position = 0;
                header.CopyTo(fs);
                foreach (var name in names)
                    fs.Write(tensors[name].ToBytes());
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try
            {
                File.Delete(tmp);
            }
            catch (IOException) { }
            throw;
        }
    }

    /// <summary>Opens a file memory-mapped: the header is parsed and validated now, tensors are read on
    /// demand.</summary>
    public static SafetensorsFile Open(string path) => new(path);

    /// <summary>Reads every tensor of a file.</summary>
    public static Dictionary<string, Tensor> Load(string path)
    {
        using var f = Open(path);
        return f.Names.ToDictionary(n => n, n => f.Read(n).DetachFromScope(), StringComparer.Ordinal);
    }

    /// <summary>Parses and validates a header against a file of <paramref name="fileLength"/> bytes.</summary>
    internal static (
        Dictionary<string, SafetensorsEntry> Entries,
        Dictionary<string, string> Metadata,
        long DataStart
    ) ParseHeader(string path, ReadOnlySpan<byte> first8, Func<long, byte[]> readHeader, long fileLength)
    {
        if (fileLength < 8)
            throw new SafetensorsException(
                path,
                SafetensorsCheck.HeaderTooSmall,
                $"the file has {fileLength} bytes, fewer than the 8-byte header length"
            );
        ulong n = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(first8);
        if (n > MaxHeaderLength)
            throw new SafetensorsException(
                path,
                SafetensorsCheck.HeaderTooLarge,
                $"the header length {n} exceeds the limit of {MaxHeaderLength} bytes"
            );
        if ((long)n > fileLength - 8)
            throw new SafetensorsException(
                path,
                SafetensorsCheck.InvalidHeaderLength,
                $"the header length {n} runs past the end of the {fileLength}-byte file"
            );
        var bytes = readHeader((long)n);
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            throw new SafetensorsException(path, SafetensorsCheck.InvalidUtf8, "the header is not valid UTF-8", e);
        }
        if (text.Length == 0 || text[0] != '{')
            throw new SafetensorsException(
                path,
                SafetensorsCheck.InvalidHeaderStart,
                "the header does not start with '{'"
            );

        var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            var reader = new Utf8JsonReader(
                bytes,
                new JsonReaderOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow }
            );
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw new SafetensorsException(path, SafetensorsCheck.InvalidJson, "the header is not a JSON object");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                string key = reader.GetString()!;
                if (!seen.Add(key))
                    throw new SafetensorsException(
                        path,
                        SafetensorsCheck.DuplicateKey,
                        $"the key '{key}' appears twice"
                    );
                reader.Read();
                using var doc = JsonDocument.ParseValue(ref reader);
                if (key == "__metadata__")
                    ReadMetadata(path, doc.RootElement, metadata);
                else
                    entries[key] = ReadEntry(path, key, doc.RootElement);
            }
            // Anything after the closing brace other than padding spaces is malformed.
            while (reader.Read())
                throw new SafetensorsException(path, SafetensorsCheck.InvalidJson, "content after the header object");
        }
        catch (JsonException e)
        {
            throw new SafetensorsException(
                path,
                SafetensorsCheck.InvalidJson,
                $"the header is not valid JSON: {e.Message}",
                e
            );
        }

        long dataStart = 8 + (long)n,
            dataLength = fileLength - dataStart;
        long expect = 0;
        foreach (var e in entries.Values.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin != expect)
                throw new SafetensorsException(
                    path,
                    SafetensorsCheck.InvalidOffsets,
                    $"tensor '{e.Name}' starts at {e.Begin} but the previous one ends at {expect}: offsets must be "
                        + $"contiguous from 0 with no gap or overlap"
                );
            long elems = 1;
            foreach (int d in e.Shape)
            {
                try
                {
                    elems = checked(elems * d);
                }
                catch (OverflowException ex)
                {
                    throw new SafetensorsException(
                        path,
                        SafetensorsCheck.Overflow,
                        $"tensor '{e.Name}': the element count of shape {Shapes.Format(e.Shape)} overflows",
                        ex
                    );
                }
            }
            long size;
            try
            {
                size = checked(elems * e.DType.SizeOf());
            }
            catch (OverflowException ex)
            {
                throw new SafetensorsException(
                    path,
                    SafetensorsCheck.Overflow,
                    $"tensor '{e.Name}': the byte size overflows",
                    ex
                );
            }
            if (e.End - e.Begin != size)
                throw new SafetensorsException(
                    path,
                    SafetensorsCheck.SizeMismatch,
                    $"tensor '{e.Name}' of shape {Shapes.Format(e.Shape)} and dtype {e.DType.SafetensorsName()} needs "
                        + $"{size} bytes but its offsets span {e.End - e.Begin}"
                );
            expect = e.End;
        }
        if (expect != dataLength)
            throw new SafetensorsException(
                path,
                SafetensorsCheck.IncompleteBuffer,
                $"the tensors cover {expect} bytes but the data buffer has {dataLength}"
            );
        return (entries, metadata, dataStart);
    }

    private static void ReadMetadata(string path, JsonElement e, Dictionary<string, string> metadata)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new SafetensorsException(
                path,
                SafetensorsCheck.InvalidMetadata,
                "__metadata__ must be an object of strings"
            );
        foreach (var p in e.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
                throw new SafetensorsException(
                    path,
                    SafetensorsCheck.InvalidMetadata,
                    $"__metadata__ value for '{p.Name}' is not a string"
                );
            if (!metadata.TryAdd(p.Name, p.Value.GetString()!))
                throw new SafetensorsException(
                    path,
                    SafetensorsCheck.DuplicateKey,
                    $"the __metadata__ key '{p.Name}' appears twice"
                );
        }
    }

    private static SafetensorsEntry ReadEntry(string path, string name, JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new SafetensorsException(
                path,
                SafetensorsCheck.InvalidEntry,
                $"the entry for '{name}' is not an object"
            );
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new SafetensorsException(
                path,
                SafetensorsCheck.InvalidEntry,
                $"tensor '{name}' has no string 'dtype'"
            );
        var dtype = DTypes.FromSafetensorsName(dt.GetString()!)
            ?? throw new SafetensorsException(
                path,
                SafetensorsCheck.UnknownDType,
                $"tensor '{name}' has dtype '{dt.GetString()}', which the engine does not hold"
            );
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new SafetensorsException(
                path,
                SafetensorsCheck.InvalidEntry,
                $"tensor '{name}' has no 'shape' array"
            );
        var shape = new List<int>();
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                throw new SafetensorsException(
                    path,
                    SafetensorsCheck.InvalidShape,
                    $"tensor '{name}' has a shape entry that is not a non-negative integer"
                );
            if (v > int.MaxValue)
                throw new SafetensorsException(
                    path,
                    SafetensorsCheck.Overflow,
                    $"tensor '{name}' has dimension {v}, beyond the engine's 32-bit limit"
                );
            shape.Add((int)v);
        }
        if (
            !e.TryGetProperty("data_offsets", out var off)
            || off.ValueKind != JsonValueKind.Array
            || off.GetArrayLength() != 2
        )
            throw new SafetensorsException(
                path,
                SafetensorsCheck.InvalidEntry,
                $"tensor '{name}' needs 'data_offsets' as [begin, end]"
            );
        long[] o = new long[2];
        int i = 0;
        foreach (var v in off.EnumerateArray())
        {
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out o[i]) || o[i] < 0)
                throw new SafetensorsException(
                    path,
                    SafetensorsCheck.InvalidOffsets,
                    $"tensor '{name}' has an offset that is not a non-negative integer"
                );
            i++;
        }
        if (o[1] < o[0])
            throw new SafetensorsException(
                path,
                SafetensorsCheck.InvalidOffsets,
                $"tensor '{name}' ends ({o[1]}) before it begins ({o[0]})"
            );
        foreach (var k in e.EnumerateObject())
            if (k.Name is not ("dtype" or "shape" or "data_offsets"))
                throw new SafetensorsException(
                    path,
                    SafetensorsCheck.InvalidEntry,
                    $"tensor '{name}' has an unknown field '{k.Name}'"
                );
        return new SafetensorsEntry(name, dtype, shape.ToArray(), o[0], o[1]);
    }
}
