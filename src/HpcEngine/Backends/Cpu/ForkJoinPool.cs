namespace HpcEngine.Backends.Cpu;

/// <summary>An OpenMP-style fork-join pool: dedicated background threads that spin for a while (default 250 µs,
/// HPCENGINE_SPIN_US), then sleep, waiting for the next parallel region. Kernels run region parts 1..n−1 on the
/// workers and part 0 on the caller. The spin matters: a training step alternates parallel GEMMs with short serial
/// ops, and a worker that had fallen asleep costs a kernel wake-up (measured: a 128×784×256 GEMM took 0.9 ms inside a
/// step against 0.48 ms back to back). Processes that share cores should use one kernel thread (no spinning then).
/// Why not Parallel.For: on a 2-vCPU machine its worker is a thread-pool thread woken per call, and measured GEMM
/// runs were bimodal (one in three calls ran its halves largely one after the other). A region started while another
/// runs (nested kernels, or a second caller thread) runs inline on its caller, so nothing deadlocks.</summary>
internal sealed class ForkJoinPool
{
    private readonly ManualResetEventSlim[] _go;
    private readonly Thread[] _threads;
    private Action<int>? _body;
    private int _parts;
    private int _pending;
    private int _busy;
    private Exception? _error;
    private long _generation;
    private readonly long _spinTicks;

    public static ForkJoinPool Shared { get; } = new(Math.Max(1, Environment.ProcessorCount));

    /// <summary>Threads a region can use, the caller included.</summary>
    public int Width => _threads.Length + 1;

    private ForkJoinPool(int width)
    {
        _spinTicks = (long)(EngineOptions.Process.WorkerSpin.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        _go = new ManualResetEventSlim[width - 1];
        _threads = new Thread[width - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _go[i] = new ManualResetEventSlim(false, spinCount: 1);
            int index = i + 1;
            _threads[i] = new Thread(() => WorkerLoop(index)) { IsBackground = true, Name = $"hpcengine-cpu-{index}" };
            _threads[i].Start();
        }
    }

    /// <summary>Runs body(0) .. body(parts−1) concurrently and returns when all are done; rethrows the first
    /// error.</summary>
    public void Run(int parts, Action<int> body)
    {
        parts = Math.Min(parts, Width);
        if (parts <= 1 || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (int p = 0; p < parts; p++)
                body(p);
            return;
        }
        try
        {
            _body = body;
            _parts = parts;
            _error = null;
            Volatile.Write(ref _pending, parts - 1);
            Interlocked.Increment(ref _generation);
            for (int i = 0; i < parts - 1; i++)
                _go[i].Set();
            try
            {
                body(0);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, e, null);
            }
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) > 0)
                spin.SpinOnce(sleep1Threshold: -1);
            _body = null;
            if (_error != null)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(_error).Throw();
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private void WorkerLoop(int index)
    {
        var go = _go[index - 1];
        long seen = 0;
        while (true)
        {
            // Spin on the generation counter first; sleep on the event only after the spin budget is used up.
            // The generation is bumped before the event is set, so a wake-up is never lost.
            long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + _spinTicks;
            while (Volatile.Read(ref _generation) == seen && System.Diagnostics.Stopwatch.GetTimestamp() < deadline)
                Thread.SpinWait(20);
            if (Volatile.Read(ref _generation) == seen)
            {
                go.Wait();
                go.Reset();
                continue;
            }
            go.Reset();
            seen = Volatile.Read(ref _generation);
            try
            {
                if (index < _parts)
                    _body!(index);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, e, null);
            }
            finally
            {
                Interlocked.Decrement(ref _pending);
            }
        }
    }
}
