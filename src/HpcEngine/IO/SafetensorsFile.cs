using System.IO.MemoryMappedFiles;

namespace HpcEngine.IO;

/// <summary>An open, validated safetensors file, memory-mapped so that large files are read on demand.</summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private readonly Dictionary<string, SafetensorsEntry> _entries;

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The __metadata__ string map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensor names, in data order.</summary>
    public IReadOnlyList<string> Names { get; }

    internal SafetensorsFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        Path = path;
        long length = new FileInfo(path).Length;
        if (length < 8)
            Safetensors.ParseHeader(path, stackalloc byte[8], _ => [], length);
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;
            var basePtr = _base;
            var (entries, metadata, dataStart) = Safetensors.ParseHeader(
                path,
                new ReadOnlySpan<byte>(basePtr, 8),
                n => new ReadOnlySpan<byte>(basePtr + 8, (int)n).ToArray(),
                length
            );
            _entries = entries;
            _dataStart = dataStart;
            Metadata = metadata;
            Names = entries.Values.OrderBy(e => e.Begin).Select(e => e.Name).ToArray();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The header entry for <paramref name="name"/>.</summary>
    public SafetensorsEntry Entry(string name) =>
        _entries.TryGetValue(name, out var e)
            ? e
            : throw new SafetensorsException(
                Path,
                SafetensorsCheck.MissingTensor,
                $"there is no tensor named '{name}' (the file has {string.Join(", ", Names.Take(10))}{(Names.Count > 10 ? ", ..." : "")})"
            );

    /// <summary>True when the file holds a tensor of that name.</summary>
    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>Copies one tensor out of the mapping into a new tensor.</summary>
    public Tensor Read(string name)
    {
        var e = Entry(name);
        return Tensor.FromBytes(
            new ReadOnlySpan<byte>(_base + _dataStart + e.Begin, checked((int)(e.End - e.Begin))),
            e.DType,
            e.Shape
        );
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_view != null)
        {
            if (_base != null)
                _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
