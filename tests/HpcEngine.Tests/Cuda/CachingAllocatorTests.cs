using HpcEngine.Cuda.Memory;

namespace HpcEngine.Tests.Cuda;

/// <summary>The caching allocator's policy, against a fake device (the real one runs in the Cuda category).</summary>
[TestFixture]
public class CachingAllocatorTests
{
    private sealed class FakeDevice(long capacity = long.MaxValue) : IDeviceMemory
    {
        private ulong _next = 0x1000;
        public long Live,
            Allocations,
            Frees;
        public readonly List<bool[]> Events = new();

        public ulong Allocate(long bytes)
        {
            if (Live + bytes > capacity)
                throw new OutOfMemoryException($"fake device: {Live} + {bytes} > {capacity}");
            Live += bytes;
            Allocations++;
            ulong p = _next;
            _next += (ulong)bytes;
            _sizes[p] = bytes;
            return p;
        }

        private readonly Dictionary<ulong, long> _sizes = new();

        public void Free(ulong pointer)
        {
            Live -= _sizes[pointer];
            _sizes.Remove(pointer);
            Frees++;
        }

        public Func<bool> RecordEvent(IntPtr stream)
        {
            var flag = new bool[1];
            Events.Add(flag);
            return () => flag[0];
        }
    }

    private static readonly IntPtr StreamA = 1,
        StreamB = 2;

    [Test]
    public void A_steady_training_loop_stops_allocating_after_its_first_step()
    {
        var device = new FakeDevice();
        using var alloc = new CachingAllocator(device);
        long[] pattern = [3136 * 4, 1024 * 1024 * 4, 1024 * 4, 3 << 20, 10 * 4, 512 * 1024 * 4];
        long afterFirst = 0;
        for (int step = 0; step < 100; step++)
        {
            var blocks = pattern.Select(b => alloc.Allocate(b, StreamA)).ToList();
            // activations freed in reverse, as backward releases them
            for (int i = blocks.Count - 1; i >= 0; i--)
                alloc.Free(blocks[i]);
            if (step == 0)
                afterFirst = device.Allocations;
        }
        Assert.That(device.Allocations, Is.EqualTo(afterFirst), "no device allocation after the first step");
        Assert.That(alloc.Stats.CacheHits, Is.EqualTo(99 * pattern.Length));
        Assert.That(alloc.Stats.AllocatedBytes, Is.Zero);
        Assert.That(alloc.Stats.ReservedBytes, Is.EqualTo(pattern.Sum(CachingAllocator.SizeClass)));
        Assert.That(alloc.Stats.PeakAllocatedBytes, Is.EqualTo(pattern.Sum(CachingAllocator.SizeClass)));
    }

    [Test]
    public void Requests_round_to_size_classes()
    {
        Assert.That(CachingAllocator.SizeClass(0), Is.EqualTo(512));
        Assert.That(CachingAllocator.SizeClass(1), Is.EqualTo(512));
        Assert.That(CachingAllocator.SizeClass(513), Is.EqualTo(1024));
        Assert.That(CachingAllocator.SizeClass((1 << 20) - 1), Is.EqualTo(1 << 20));
        Assert.That(CachingAllocator.SizeClass(1 << 20), Is.EqualTo(2 << 20));
        Assert.That(CachingAllocator.SizeClass(3 << 20), Is.EqualTo(4 << 20));
        Assert.Throws<ArgumentOutOfRangeException>(() => CachingAllocator.SizeClass(-1));
    }

    [Test]
    public void Reuse_is_stream_ordered_and_cross_stream_use_waits_for_its_event()
    {
        var device = new FakeDevice();
        using var alloc = new CachingAllocator(device);
        var a = alloc.Allocate(4096, StreamA);
        alloc.Free(a);
        var onB = alloc.Allocate(4096, StreamB);
        Assert.That(onB.Pointer, Is.Not.EqualTo(a.Pointer), "a block freed on stream A is not handed to stream B");
        var again = alloc.Allocate(4096, StreamA);
        Assert.That(again.Pointer, Is.EqualTo(a.Pointer), "stream A reuses its own block at once");

        alloc.RecordStream(again, StreamB);
        alloc.Free(again);
        var meanwhile = alloc.Allocate(4096, StreamA);
        Assert.That(meanwhile.Pointer, Is.Not.EqualTo(a.Pointer), "held until stream B has finished with it");
        device.Events.Single()[0] = true;
        alloc.Free(meanwhile);
        var x = alloc.Allocate(4096, StreamA);
        var y = alloc.Allocate(4096, StreamA);
        Assert.That(new[] { x.Pointer, y.Pointer }, Does.Contain(a.Pointer), "after B's event the block is reusable");
    }

    [Test]
    public void Out_of_memory_releases_the_cache_and_retries_and_misuse_is_an_error()
    {
        var device = new FakeDevice(capacity: 6 << 20);
        var alloc = new CachingAllocator(device);
        var big = alloc.Allocate(4 << 20, StreamA);
        alloc.Free(big); // cached: 4 MiB reserved, 0 in use
        // a 6 MiB class beside the cached 4 MiB exceeds 6 MiB: retried after release
        var other = alloc.Allocate(5 << 20, StreamA);
        Assert.That(alloc.Stats.ReservedBytes, Is.EqualTo(6 << 20));
        Assert.That(device.Frees, Is.EqualTo(1));
        Assert.Throws<InvalidOperationException>(() => alloc.Free(big), "double free");
        alloc.EmptyCache();
        Assert.That(alloc.Stats.ReservedBytes, Is.EqualTo(6 << 20), "a block in use is not released by EmptyCache");
        alloc.Dispose();
        Assert.That(device.Live, Is.Zero, "dispose returns everything");
        GC.KeepAlive(other);
    }

    [Test]
    public void A_graphs_private_pool_keeps_its_blocks_from_everyone_else_until_released()
    {
        var device = new FakeDevice(capacity: 64 << 20);
        using var alloc = new CachingAllocator(device);
        var shared = alloc.Allocate(4096, StreamA);
        alloc.Free(shared); // in the shared cache
        var pool = new MemoryPool();
        alloc.BeginPool(pool);
        var t1 = alloc.Allocate(4096, StreamA);
        Assert.That(
            t1.Pointer,
            Is.Not.EqualTo(shared.Pointer),
            "a capture does not take shared blocks (their owners may run between replays)"
        );
        alloc.Free(t1);
        var t2 = alloc.Allocate(4096, StreamA);
        Assert.That(
            t2.Pointer,
            Is.EqualTo(t1.Pointer),
            "within the capture, a freed pool block is reused (one stream: the graph keeps the order)"
        );
        var output = alloc.Allocate(8192, StreamA); // e.g. the loss, kept by the caller after the capture
        alloc.Free(t2);
        Assert.Throws<InvalidOperationException>(() => alloc.BeginPool(new MemoryPool()), "one capture at a time");
        Assert.Throws<InvalidOperationException>(() => alloc.EmptyCache(), "no cuMemFree during a capture");
        alloc.EndPool();
        Assert.That(pool.Blocks, Is.EqualTo(2));

        var after = alloc.Allocate(4096, StreamA);
        Assert.That(after.Pointer, Is.EqualTo(shared.Pointer), "after the capture, allocations use the shared cache");
        var more = alloc.Allocate(4096, StreamA);
        Assert.That(more.Pointer, Is.Not.EqualTo(t1.Pointer), "the graph's temporaries stay reserved for its replays");
        alloc.Free(output);
        alloc.BeginPool(pool); // a second capture into the same pool reuses its blocks
        var again = alloc.Allocate(8192, StreamA);
        Assert.That(again.Pointer, Is.EqualTo(output.Pointer));
        alloc.Free(again);
        alloc.EndPool();

        alloc.ReleasePool(pool);
        var x = alloc.Allocate(4096, StreamA);
        Assert.That(x.Pointer, Is.EqualTo(t1.Pointer), "a released pool's blocks join the shared cache");
        Assert.Throws<InvalidOperationException>(() => alloc.BeginPool(pool));
        foreach (var b in new[] { after, more, x })
            alloc.Free(b);
        long reserved = alloc.Stats.ReservedBytes;
        alloc.EmptyCache();
        Assert.That(device.Live, Is.Zero, $"everything ({reserved} bytes) is returned once free");
    }
}
