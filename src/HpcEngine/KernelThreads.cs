using HpcEngine.Backends.Cpu;

namespace HpcEngine;

/// <summary>How many threads the CPU kernels split large work over — the process-wide knob PyTorch calls
/// <c>torch.set_num_threads</c>. Default: every core, or HPCENGINE_NUM_THREADS (<see cref="EngineOptions.Threads"/>).
/// It is process-wide on purpose: the kernels share one fork-join pool, sized once.</summary>
public static class KernelThreads
{
    /// <summary>Threads per kernel; values are clamped to [1, the pool's width (the core count)].</summary>
    public static int Count
    {
        get => CpuThreads.Count;
        set => CpuThreads.Count = value;
    }
}
