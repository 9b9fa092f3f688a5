using HpcEngine.Backends;
using HpcEngine.Cuda.Memory;

namespace HpcEngine.Cuda;

/// <summary>What a CUDA-graph capture owns besides its kernels: the private memory pool its tensors come from, and,
/// for every generator the step draws random numbers from (dropout), a device offset that each replay sets so the
/// replay draws the numbers an eager step would have drawn next — not the capture's numbers again.</summary>
internal sealed class GraphCapture(MemoryPool pool)
{
    /// <summary>One generator's draws in the graph: they read their Philox counter as (captured start + *Base);
    /// Span is how many counters the captured step reserved.</summary>
    public sealed class RandomStream
    {
        public required Tensor Base;
        public required ulong First;
        public ulong Span;
    }

    public MemoryPool Pool { get; } = pool;

    public Dictionary<Generator, RandomStream> Random { get; } = new(ReferenceEqualityComparer.Instance);

    /// <summary>The replay offset a draw of <paramref name="generator"/> at counter <paramref name="start"/> reads
    /// (allocated from the pool on first use; written only by replays, never inside the graph).</summary>
    public Tensor OffsetFor(Generator generator, ulong start, Device device)
    {
        if (!Random.TryGetValue(generator, out var r))
            Random[generator] = r = new RandomStream
            {
                Base = BackendTensors.Empty([], DType.Int64, device).DetachFromScope(),
                First = start,
            };
        return r.Base;
    }

    /// <summary>After the capture: each generator's span is what the step reserved from it.</summary>
    public void Seal()
    {
        foreach (var (generator, r) in Random)
            r.Span = generator.Offset - r.First;
    }
}
