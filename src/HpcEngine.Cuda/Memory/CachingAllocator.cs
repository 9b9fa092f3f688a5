namespace HpcEngine.Cuda.Memory;

/// <summary>Where device memory comes from (the driver, or a fake in tests).</summary>
public interface IDeviceMemory
{
    /// <summary>Allocates <paramref name="bytes"/> of device memory; returns its device address.</summary>
    ulong Allocate(long bytes);

    /// <summary>Returns memory from <see cref="Allocate"/>.</summary>
    void Free(ulong pointer);

    /// <summary>Records an event on <paramref name="stream"/> now; the returned function says whether the stream has
    /// reached it (all work queued before it has finished).</summary>
    Func<bool> RecordEvent(IntPtr stream);
}

/// <summary>A block handed out by the <see cref="CachingAllocator"/>.</summary>
public sealed class DeviceBlock
{
    internal DeviceBlock(ulong pointer, long size, long requested, IntPtr stream) =>
        (Pointer, Size, Requested, Stream) = (pointer, size, requested, stream);

    /// <summary>The device address of the block.</summary>
    public ulong Pointer { get; }

    /// <summary>The size class: what the device allocation holds.</summary>
    public long Size { get; }

    /// <summary>What the caller asked for.</summary>
    public long Requested { get; internal set; }

    /// <summary>The stream the block was allocated on: work on it is ordered with the block's reuse.</summary>
    public IntPtr Stream { get; }
    internal HashSet<IntPtr> UsedOn { get; } = new();
    internal bool Free { get; set; }

    /// <summary>The private pool the block belongs to (a CUDA graph's), or null for the shared cache.</summary>
    internal MemoryPool? Pool { get; set; }
}

/// <summary>A private set of cached blocks, as a captured CUDA graph needs: every block allocated while the pool is
/// active (<see cref="CachingAllocator.BeginPool"/>) belongs to it, returns to it when freed, and is handed out again
/// only to allocations made while the same pool is active — so memory a graph's kernels write on replay is never given
/// to anything else. <see cref="CachingAllocator.ReleasePool"/> gives the blocks back to the shared cache.</summary>
public sealed class MemoryPool
{
    internal Dictionary<long, Stack<DeviceBlock>> Free { get; } = new();
    internal bool Released { get; set; }

    /// <summary>Blocks of this pool, in use or cached.</summary>
    public int Blocks { get; internal set; }
}

/// <summary>Memory statistics of a <see cref="CachingAllocator"/>.</summary>
public readonly record struct AllocatorStats(
    long AllocatedBytes,
    long ReservedBytes,
    long PeakAllocatedBytes,
    long DeviceAllocations,
    long DeviceFrees,
    long CacheHits
);

/// <summary>A caching device-memory allocator in the manner of PyTorch's CUDA caching allocator, so that a steady
/// training loop makes no cuMemAlloc/cuMemFree calls (each costs a device synchronisation and tens of microseconds):
/// <list type="bullet">
/// <item>Requests are rounded to size classes: multiples of 512 B below 1 MiB, multiples of 2 MiB above (a few
/// per cent of slack against unbounded fragmentation), and freed blocks are kept per (stream, size class).</item>
/// <item>Stream-ordered reuse: a block freed on its own stream can serve the next request on that stream at once —
/// work queued later on the same stream runs after everything that used it. A block also used on other streams
/// (<see cref="RecordStream"/>) waits until events recorded on those streams at free time have completed.</item>
/// <item>When the device is out of memory, the cache is released and the allocation retried once.</item>
/// <item><see cref="EmptyCache"/> returns the cached blocks; <see cref="Dispose"/> returns everything.</item>
/// </list>
/// Thread-safe.</summary>
public sealed class CachingAllocator : IDisposable
{
    private const long SmallLimit = 1L << 20,
        SmallRound = 512,
        LargeRound = 2L << 20;
    private readonly IDeviceMemory _device;
    private readonly Lock _lock = new();
    private readonly Dictionary<(IntPtr Stream, long Size), Stack<DeviceBlock>> _free = new();
    private readonly List<(DeviceBlock Block, List<Func<bool>> Events)> _pending = new();
    private readonly HashSet<DeviceBlock> _all = new();
    private MemoryPool? _activePool;
    private long _allocated,
        _reserved,
        _peak,
        _deviceAllocs,
        _deviceFrees,
        _hits;

    /// <summary>A caching allocator over <paramref name="device"/>'s raw allocations.</summary>
    public CachingAllocator(IDeviceMemory device) =>
        _device = device ?? throw new ArgumentNullException(nameof(device));

    /// <summary>The size class of a request.</summary>
    public static long SizeClass(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        long b = Math.Max(bytes, 1);
        return b < SmallLimit
            ? (b + SmallRound - 1) / SmallRound * SmallRound
            : (b + LargeRound - 1) / LargeRound * LargeRound;
    }

    /// <summary>Bytes and blocks allocated, cached and in use, and how often the cache was hit.</summary>
    public AllocatorStats Stats
    {
        get
        {
            lock (_lock)
                return new AllocatorStats(_allocated, _reserved, _peak, _deviceAllocs, _deviceFrees, _hits);
        }
    }

    /// <summary>Routes every allocation to <paramref name="pool"/> until <see cref="EndPool"/> (one pool at a time: a
    /// graph capture). While a pool is active nothing is returned to the device (cuMemFree would break a
    /// capture).</summary>
    public void BeginPool(MemoryPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        lock (_lock)
        {
            if (_activePool != null)
                throw new InvalidOperationException("a memory pool is already active (one graph capture at a time)");
            if (pool.Released)
                throw new InvalidOperationException("the memory pool was released");
            _activePool = pool;
        }
    }

    /// <summary>Ends the memory pool begun last: allocations go back to the shared cache.</summary>
    public void EndPool()
    {
        lock (_lock)
            _activePool = null;
    }

    /// <summary>Hands the pool's cached blocks to the shared cache; its blocks still in use go there when
    /// freed.</summary>
    public void ReleasePool(MemoryPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        lock (_lock)
        {
            if (pool.Released)
                return;
            if (_activePool == pool)
                _activePool = null;
            pool.Released = true;
            foreach (var stack in pool.Free.Values)
                while (stack.Count > 0)
                {
                    var b = stack.Pop();
                    b.Pool = null;
                    Cache(b);
                }
            pool.Free.Clear();
        }
    }

    /// <summary>A block of at least <paramref name="bytes"/> for work on <paramref name="stream"/>.</summary>
    public DeviceBlock Allocate(long bytes, IntPtr stream)
    {
        long size = SizeClass(bytes);
        lock (_lock)
        {
            CollectCompleted();
            if (_activePool is { } pool)
                return AllocateInPool(pool, bytes, size, stream);
            if (_free.TryGetValue((stream, size), out var stack) && stack.Count > 0)
            {
                var reused = stack.Pop();
                reused.Free = false;
                reused.Requested = bytes;
                reused.UsedOn.Clear();
                _hits++;
                Account(size);
                return reused;
            }
            ulong p;
            try
            {
                p = _device.Allocate(size);
            }
            catch (Exception e) when (e is Interop.CudaException or OutOfMemoryException)
            {
                // Out of memory: give the cache back to the device and try once more.
                ReleaseCached();
                p = _device.Allocate(size);
            }
            _deviceAllocs++;
            _reserved += size;
            var block = new DeviceBlock(p, size, bytes, stream);
            _all.Add(block);
            Account(size);
            return block;
        }
    }

    private DeviceBlock AllocateInPool(MemoryPool pool, long bytes, long size, IntPtr stream)
    {
        if (pool.Free.TryGetValue(size, out var stack) && stack.Count > 0)
        {
            var reused = stack.Pop();
            reused.Free = false;
            reused.Requested = bytes;
            _hits++;
            Account(size);
            return reused;
        }
        // No retry after releasing the cache: that would call cuMemFree in the middle of a capture.
        ulong p = _device.Allocate(size);
        _deviceAllocs++;
        _reserved += size;
        var block = new DeviceBlock(p, size, bytes, stream) { Pool = pool };
        pool.Blocks++;
        _all.Add(block);
        Account(size);
        return block;
    }

    private void Account(long size)
    {
        _allocated += size;
        _peak = Math.Max(_peak, _allocated);
    }

    /// <summary>Marks <paramref name="block"/> as used by work on another stream too: on free, it is held until that
    /// stream has finished the work queued before the free.</summary>
    public void RecordStream(DeviceBlock block, IntPtr stream)
    {
        ArgumentNullException.ThrowIfNull(block);
        lock (_lock)
            if (stream != block.Stream)
                block.UsedOn.Add(stream);
    }

    /// <summary>Returns a block to the cache (stream-ordered; see the class remarks).</summary>
    public void Free(DeviceBlock block)
    {
        ArgumentNullException.ThrowIfNull(block);
        lock (_lock)
        {
            if (block.Free || !_all.Contains(block))
                throw new InvalidOperationException(
                    $"block 0x{block.Pointer:x} is not allocated from this allocator (double free?)"
                );
            block.Free = true;
            _allocated -= block.Size;
            if (block.Pool is { Released: false } pool)
            {
                // A graph's block: back to its pool only (replays write into it; stream order holds on one stream).
                if (!pool.Free.TryGetValue(block.Size, out var stack))
                    pool.Free[block.Size] = stack = new Stack<DeviceBlock>();
                stack.Push(block);
                return;
            }
            block.Pool = null;
            if (block.UsedOn.Count == 0)
                Cache(block);
            else
                _pending.Add((block, block.UsedOn.Select(_device.RecordEvent).ToList()));
        }
    }

    private void Cache(DeviceBlock block)
    {
        if (!_free.TryGetValue((block.Stream, block.Size), out var stack))
            _free[(block.Stream, block.Size)] = stack = new Stack<DeviceBlock>();
        stack.Push(block);
    }

    /// <summary>Moves freed cross-stream blocks whose events have completed into the cache.</summary>
    private void CollectCompleted()
    {
        for (int i = _pending.Count - 1; i >= 0; i--)
            if (_pending[i].Events.All(done => done()))
            {
                Cache(_pending[i].Block);
                _pending.RemoveAt(i);
            }
    }

    private void ReleaseCached()
    {
        foreach (var stack in _free.Values)
            while (stack.Count > 0)
            {
                var b = stack.Pop();
                _device.Free(b.Pointer);
                _all.Remove(b);
                _reserved -= b.Size;
                _deviceFrees++;
            }
        _free.Clear();
    }

    /// <summary>Returns every cached (free) block to the device; blocks in use stay.</summary>
    public void EmptyCache()
    {
        lock (_lock)
        {
            if (_activePool != null)
                throw new InvalidOperationException("the cache cannot be emptied during a graph capture");
            CollectCompleted();
            ReleaseCached();
        }
    }

    /// <summary>Returns all memory to the device, blocks in use included (the owner is going away).</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var b in _all)
                _device.Free(b.Pointer);
            _deviceFrees += _all.Count;
            _all.Clear();
            _free.Clear();
            _pending.Clear();
            _allocated = _reserved = 0;
        }
    }
}
