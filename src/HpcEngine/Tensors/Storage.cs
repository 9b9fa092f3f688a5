using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HpcEngine;

/// <summary>A reference-counted block of memory that tensors view: CPU memory, or device memory from a registered
/// backend. CPU buffers are pinned (pinned object heap), so kernels take raw pointers without <c>fixed</c>, and go back
/// to <see cref="StoragePool"/> when the last tensor viewing them is disposed (a CPU storage never released is simply
/// collected by the GC). Device memory goes back to its backend on the last release; its pointer is never handed to
/// a CPU kernel (<see cref="Pointer"/> throws instead).</summary>
internal sealed unsafe class Storage
{
    private byte[]? _buffer;
    private readonly bool _pooled = true;
    private Backends.IBackendMemory? _deviceMemory;
    private int _refs = 1;

    /// <summary>Where the bytes live: the CPU (a pooled array) or a device (memory from its backend).</summary>
    public Device Device { get; }

    /// <summary>Bumped by every in-place write, so autograd can tell that a saved tensor changed.</summary>
    public int Version;

    public long ByteLength { get; }

    private Storage(byte[] buffer, long byteLength)
    {
        _buffer = buffer;
        ByteLength = byteLength;
        Device = Device.Cpu;
    }

    private Storage(Backends.IBackendMemory memory, long byteLength, Device device)
    {
        _deviceMemory = memory;
        ByteLength = byteLength;
        Device = device;
    }

    /// <summary>CPU storage over a caller's pinned array (not pooled: the array is never returned to the pool). For
    /// backends that keep device memory in host arrays, such as the test backend.</summary>
    public static Storage Wrap(byte[] pinnedBuffer) => new(pinnedBuffer, pinnedBuffer.LongLength, pooled: false);

    private Storage(byte[] buffer, long byteLength, bool pooled)
        : this(buffer, byteLength) => _pooled = pooled;

    /// <summary>Storage on <paramref name="device"/>: CPU memory from the pool, or memory from the device's
    /// backend.</summary>
    public static Storage Allocate(Device device, long bytes, bool zeroed)
    {
        if (device.Type == DeviceType.Cpu)
            return Allocate(bytes, zeroed);
        var backend = Backends.DeviceBackends.For(device);
        var storage = new Storage(backend.Allocate(device, bytes), bytes, device);
        return storage;
    }

    /// <summary>The device memory behind a device storage.</summary>
    public Backends.IBackendMemory DeviceMemory =>
        _deviceMemory
        ?? (
            Device.Type == DeviceType.Cpu
                ? throw new InvalidOperationException("internal: a CPU storage has no device memory")
                : throw new ObjectDisposedException(
                    nameof(Storage),
                    "the tensor's storage was released (the tensor was disposed)"
                )
        );

    private DeviceMismatchException OnDevice() =>
        new(
            $"the memory of a tensor on {Device} is not host memory: move the tensor with .To(Device.Cpu) before "
                + $"reading or "
                + "writing it on the host (spans, pointers, the CPU's kernels)"
        );

    public static Storage Allocate(long bytes, bool zeroed)
    {
        var buf = StoragePool.Rent(bytes);
        if (zeroed)
            Array.Clear(buf, 0, (int)bytes);
        return new Storage(buf, bytes);
    }

    public byte* Pointer
    {
        get
        {
            if (Device.Type != DeviceType.Cpu)
                throw OnDevice();
            var b = _buffer
                ?? throw new ObjectDisposedException(
                    nameof(Storage),
                    "the tensor's storage was released (the tensor was disposed)"
                );
            return (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(b));
        }
    }

    public bool IsAlive => _buffer != null || _deviceMemory != null;

    /// <summary>The backing array (pinned), for APIs that take Memory&lt;byte&gt; such as sockets.</summary>
    public byte[] Bytes =>
        Device.Type != DeviceType.Cpu
            ? throw OnDevice()
            : _buffer
                ?? throw new ObjectDisposedException(
                    nameof(Storage),
                    "the tensor's storage was released (the tensor was disposed)"
                );

    public int RefCount => Volatile.Read(ref _refs);

    public void AddRef()
    {
        if (Interlocked.Increment(ref _refs) <= 1)
            throw new ObjectDisposedException(nameof(Storage), "cannot share a storage that was already released");
    }

    public void Release()
    {
        int r = Interlocked.Decrement(ref _refs);
        if (r == 0)
        {
            var b = Interlocked.Exchange(ref _buffer, null);
            if (b != null && _pooled)
                StoragePool.Return(b, ByteLength);
            Interlocked.Exchange(ref _deviceMemory, null)?.Dispose();
        }
    }
}

/// <summary>Process-wide cache of storage buffers by exact byte size, so a steady training loop (same shapes every
/// step) reuses memory instead of allocating. Bounded in count per size and in total bytes; like
/// <c>ArrayPool.Shared</c> it is the one documented piece of shared state besides the defaults.</summary>
internal static class StoragePool
{
    private const int MaxPerSize = 32;
    private static readonly Dictionary<long, Stack<byte[]>> Free = new();
    private static readonly Lock Gate = new();
    private static long _cachedBytes;
    private static long _rented;
    private static long _allocated;
    private static long _liveBytes,
        _peakLiveBytes;

    /// <summary>Debug aid (HPCENGINE_POISON_POOL=1): fill every rented buffer with 0xFF bytes (NaN as floats), so a
    /// kernel that reads memory it never wrote shows up as NaN instead of silently reading stale values.</summary>
    public static bool Poison { get; set; } = EngineOptions.Process.PoisonPool;

    /// <summary>Upper bound on bytes kept cached (default 2 GiB).</summary>
    public static long MaxCachedBytes { get; set; } = 2L << 30;

    /// <summary>Buffers handed out since start.</summary>
    public static long Rented => Interlocked.Read(ref _rented);

    /// <summary>Buffers that had to be newly allocated (a cache miss) since start.</summary>
    public static long Allocated => Interlocked.Read(ref _allocated);

    /// <summary>Bytes of tensor storage alive now (rented and not yet returned): the engine's live-tensor
    /// accounting.</summary>
    public static long LiveBytes => Interlocked.Read(ref _liveBytes);

    /// <summary>The most <see cref="LiveBytes"/> seen since the last <see cref="ResetPeak"/>.</summary>
    public static long PeakLiveBytes => Interlocked.Read(ref _peakLiveBytes);

    /// <summary>Starts a new peak measurement at the current live bytes.</summary>
    public static void ResetPeak() => Interlocked.Exchange(ref _peakLiveBytes, LiveBytes);

    private static void AddLive(long bytes)
    {
        long now = Interlocked.Add(ref _liveBytes, bytes);
        long peak;
        while (
            now > (peak = Interlocked.Read(ref _peakLiveBytes))
            && Interlocked.CompareExchange(ref _peakLiveBytes, now, peak) != peak
        ) { }
    }

    /// <summary>Bytes currently cached and free.</summary>
    public static long CachedBytes
    {
        get
        {
            lock (Gate)
                return _cachedBytes;
        }
    }

    internal static byte[] Rent(long bytes)
    {
        if (bytes > Array.MaxLength)
            throw new OutOfMemoryException(
                $"a single CPU storage of {bytes} bytes exceeds the engine's limit of {Array.MaxLength} bytes"
            );
        Interlocked.Increment(ref _rented);
        AddLive(bytes);
        lock (Gate)
        {
            if (Free.TryGetValue(bytes, out var s) && s.Count > 0)
            {
                _cachedBytes -= bytes;
                var reused = s.Pop();
                if (Poison)
                    reused.AsSpan().Fill(0xFF);
                return reused;
            }
        }
        Interlocked.Increment(ref _allocated);
        // Zero-length storages still get a real (1-byte) array so Pointer is valid.
        var fresh = GC.AllocateUninitializedArray<byte>((int)Math.Max(bytes, 1), pinned: true);
        if (Poison)
            fresh.AsSpan().Fill(0xFF);
        return fresh;
    }

    internal static void Return(byte[] buffer, long bytes)
    {
        Interlocked.Add(ref _liveBytes, -bytes);
        lock (Gate)
        {
            if (_cachedBytes + bytes > MaxCachedBytes)
                return;
            if (!Free.TryGetValue(bytes, out var s))
                Free[bytes] = s = new Stack<byte[]>();
            if (s.Count >= MaxPerSize)
                return;
            s.Push(buffer);
            _cachedBytes += bytes;
        }
    }

    /// <summary>Drops every cached buffer (for tests and memory-constrained hosts).</summary>
    public static void Clear()
    {
        lock (Gate)
        {
            Free.Clear();
            _cachedBytes = 0;
        }
    }
}
