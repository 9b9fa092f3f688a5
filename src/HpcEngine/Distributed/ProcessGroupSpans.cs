using System.Runtime.InteropServices;

namespace HpcEngine.Distributed;

/// <summary>Collectives on spans of float, double, int, long and Half, for callers that hold plain arrays. They block
/// until the collective completes (a span cannot outlive the call, so there is no Work to wait on later); for overlap
/// with computation use the tensor overloads. Each copies the span into a pinned tensor and back.</summary>
public static class ProcessGroupSpans
{
    private static DType DTypeOf<T>()
        where T : unmanaged =>
        typeof(T) == typeof(float) ? DType.Float32
        : typeof(T) == typeof(double) ? DType.Float64
        : typeof(T) == typeof(int) ? DType.Int32
        : typeof(T) == typeof(long) ? DType.Int64
        : typeof(T) == typeof(Half) ? DType.Float16
        : typeof(T) == typeof(byte) ? DType.UInt8
        : throw new NotSupportedException(
            $"collectives on spans of {typeof(T).Name} are not supported: use float, double, int, long, Half or byte"
        );

    private static Tensor Wrap<T>(ReadOnlySpan<T> data)
        where T : unmanaged => Tensor.FromBytes(MemoryMarshal.AsBytes(data), DTypeOf<T>(), data.Length);

    /// <summary>Allreduces <paramref name="data"/> in place over <paramref name="group"/> and waits for it.</summary>
    public static void AllReduce<T>(this IProcessGroup group, Span<T> data, AllReduceOptions? options = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(group);
        using var t = Wrap<T>(data);
        group.AllReduce(t, options).Wait();
        t.AsReadOnlySpan<T>().CopyTo(data);
    }

    /// <summary>Broadcasts <paramref name="data"/> from the options' root into every rank's span and waits for
    /// it.</summary>
    public static void Broadcast<T>(this IProcessGroup group, Span<T> data, BroadcastOptions? options = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(group);
        using var t = Wrap<T>(data);
        group.Broadcast(t, options).Wait();
        t.AsReadOnlySpan<T>().CopyTo(data);
    }

    /// <summary>Reduces into the root's span (other ranks' spans are left unchanged).</summary>
    public static void Reduce<T>(this IProcessGroup group, Span<T> data, ReduceOptions? options = null)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(group);
        using var t = Wrap<T>(data);
        group.Reduce(t, options).Wait();
        if (group.Rank == (options?.Root ?? 0))
            t.AsReadOnlySpan<T>().CopyTo(data);
    }

    /// <summary><paramref name="output"/> (Size × input.Length) receives every rank's input in rank order.</summary>
    public static void AllGather<T>(
        this IProcessGroup group,
        Span<T> output,
        ReadOnlySpan<T> input,
        CollectiveOptions? options = null
    )
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(group);
        using var i = Wrap(input);
        using var o = Tensor.Zeros([output.Length], DTypeOf<T>());
        group.AllGather(o, i, options).Wait();
        o.AsReadOnlySpan<T>().CopyTo(output);
    }

    /// <summary><paramref name="output"/> receives the reduction of every rank's block [Rank] of <paramref
    /// name="input"/>.</summary>
    public static void ReduceScatter<T>(
        this IProcessGroup group,
        Span<T> output,
        ReadOnlySpan<T> input,
        ReduceScatterOptions? options = null
    )
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(group);
        using var i = Wrap(input);
        using var o = Tensor.Zeros([output.Length], DTypeOf<T>());
        group.ReduceScatter(o, i, options).Wait();
        o.AsReadOnlySpan<T>().CopyTo(output);
    }

    /// <summary>Sends <paramref name="data"/> to rank <paramref name="dst"/> under <paramref name="tag"/> and waits
    /// until it is out.</summary>
    public static void Send<T>(this IProcessGroup group, ReadOnlySpan<T> data, int dst, int tag = 0)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(group);
        using var t = Wrap(data);
        group.Send(t, dst, tag).Wait();
    }

    /// <summary>Receives exactly <c>data.Length</c> elements from rank <paramref name="src"/> under <paramref
    /// name="tag"/> into <paramref name="data"/>.</summary>
    public static void Recv<T>(this IProcessGroup group, Span<T> data, int src, int tag = 0)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(group);
        using var t = Tensor.Zeros([data.Length], DTypeOf<T>());
        group.Recv(t, src, tag).Wait();
        t.AsReadOnlySpan<T>().CopyTo(data);
    }
}
