using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;

namespace HpcEngine.Distributed.Shm;

/// <summary>The shared memory of one same-host link: a file in /dev/shm mapped by both ranks, holding a header and two
/// rings (one per direction). The creating rank unlinks the file as soon as its peer says it has mapped it, so a
/// crash leaves nothing behind in /dev/shm; the memory lives until both mappings are gone. The file is preallocated,
/// so a full /dev/shm is an error at creation instead of a SIGBUS at the first write.
/// <para>Layout: [header 4 KiB: magic, version, ring bytes, creator pid | control of rings 0-3]
/// [ring 0 data][ring 1 data][ring 2 data][ring 3 data]. Rings 0 and 1 carry the link's frames (creator → opener and
/// back); rings 2 and 3, of <see cref="ExchangeRingBytes"/>, carry the small ops that skip the framing (see <see
/// cref="ShmExchange"/>), so a small op never queues behind a large one's frames.</para></summary>
internal sealed unsafe class ShmSegment : IDisposable
{
    public const string Directory = "/dev/shm";
    private const string Prefix = "hpcengine-";
    private const ulong Magic = 0x4D48534345435048; // "HPCESHM"
    private const int Version = 2;
    private const int HeaderBytes = 4096;
    private const int ControlOffset = 64;

    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private int _disposed;

    /// <summary>The file's name in /dev/shm (what the creator sends its peer).</summary>
    public string Name { get; }
    public long RingBytes { get; }

    /// <summary>Bytes of each exchange ring: room for two of the largest small-op messages.</summary>
    public const long ExchangeRingBytes = 256 * 1024;

    /// <summary>The exchange rings, creator → opener and back.</summary>
    public ShmRing ExchangeCreatorToOpener { get; }
    public ShmRing ExchangeOpenerToCreator { get; }

    private static long TotalBytes(long ringBytes) => HeaderBytes + 2 * ringBytes + 2 * ExchangeRingBytes;

    /// <summary>The creator's ring to the opener, and back.</summary>
    public ShmRing CreatorToOpener { get; }
    public ShmRing OpenerToCreator { get; }

    private ShmSegment(string name, MemoryMappedFile file, long ringBytes)
    {
        Name = name;
        RingBytes = ringBytes;
        _file = file;
        _view = file.CreateViewAccessor(0, TotalBytes(ringBytes), MemoryMappedFileAccess.ReadWrite);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
        CreatorToOpener = new ShmRing(_base + ControlOffset, _base + HeaderBytes, ringBytes);
        OpenerToCreator = new ShmRing(
            _base + ControlOffset + ShmRing.ControlBytes,
            _base + HeaderBytes + ringBytes,
            ringBytes
        );
        byte* exchange = _base + HeaderBytes + 2 * ringBytes;
        ExchangeCreatorToOpener = new ShmRing(
            _base + ControlOffset + 2 * ShmRing.ControlBytes,
            exchange,
            ExchangeRingBytes
        );
        ExchangeOpenerToCreator = new ShmRing(
            _base + ControlOffset + 3 * ShmRing.ControlBytes,
            exchange + ExchangeRingBytes,
            ExchangeRingBytes
        );
    }

    private static string PathOf(string name) => Path.Combine(Directory, name);

    /// <summary>Creates (owner-only permissions), sizes (preallocated) and maps a new segment with two rings of
    /// <paramref name="ringBytes"/>.</summary>
    public static ShmSegment Create(long ringBytes)
    {
        string name = $"{Prefix}{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}";
        long total = TotalBytes(ringBytes);
        string path = PathOf(name);
        try
        {
            var create = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.ReadWrite,
                PreallocationSize = total,
            };
            if (!OperatingSystem.IsWindows())
                create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using (var fs = new FileStream(path, create))
            {
                fs.SetLength(total);
                var header = new byte[24];
                BinaryPrimitives.WriteUInt64LittleEndian(header, Magic);
                BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), Version);
                BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), Environment.ProcessId);
                BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), ringBytes);
                fs.Write(header);
            }
            return new ShmSegment(
                name,
                MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, total, MemoryMappedFileAccess.ReadWrite),
                ringBytes
            );
        }
        catch
        {
            Unlink(name);
            throw;
        }
    }

    /// <summary>Maps the segment a same-host peer created; a name that is not ours, a short file or a wrong header is
    /// an <see cref="InvalidDataException"/> (another /dev/shm, or not our peer).</summary>
    public static ShmSegment Open(string name)
    {
        if (!name.StartsWith(Prefix, StringComparison.Ordinal) || name.Contains('/') || name.Contains(".."))
            throw new InvalidDataException($"'{name}' is not a shared-memory segment name of this engine");
        string path = PathOf(name);
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new FileNotFoundException(
                $"shared-memory segment {path} does not exist here: the peer's /dev/shm is another one (a container or "
                    + $"mount namespace of its own)",
                path
            );
        var header = new byte[24];
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read))
            fs.ReadExactly(header);
        long ringBytes = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(16));
        if (
            BinaryPrimitives.ReadUInt64LittleEndian(header) != Magic
            || BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8)) != Version
            || ringBytes <= 0
            || info.Length != TotalBytes(ringBytes)
        )
            throw new InvalidDataException(
                $"{path} is not a version-{Version} HpcEngine link segment ({info.Length} bytes)"
            );
        return new ShmSegment(
            name,
            MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, info.Length, MemoryMappedFileAccess.ReadWrite),
            ringBytes
        );
    }

    /// <summary>Removes the file (the mappings stay valid); no error when it is already gone.</summary>
    public static void Unlink(string name)
    {
        try
        {
            File.Delete(PathOf(name));
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Takes a reference on the mapping for one call, so a concurrent <see cref="Dispose"/> unmaps only after
    /// that call is done; throws <see cref="ObjectDisposedException"/> once disposed.</summary>
    public void Enter()
    {
        bool ok = false;
        _view.SafeMemoryMappedViewHandle.DangerousAddRef(ref ok);
    }

    public void Exit() => _view.SafeMemoryMappedViewHandle.DangerousRelease();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
