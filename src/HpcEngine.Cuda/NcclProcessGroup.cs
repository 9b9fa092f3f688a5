using System.Collections.Concurrent;
using HpcEngine.Backends;
using HpcEngine.Cuda.Interop;
using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Cuda;

/// <summary>The NCCL backend behind <see cref="IProcessGroup"/>, so DDP, the strategies and the compression codecs run
/// over NCCL unchanged. Ops run in issue order on one worker thread per group (NCCL requires the same order on every
/// rank): the tensor is staged into device memory, the collective runs on the context's stream, and the result comes
/// back. A watchdog (<see cref="NcclCommunicator.Wait"/>) polls for asynchronous NCCL errors and the op's timeout;
/// either aborts the communicator and fails the op — and every later one — with a <see cref="CollectiveException"/>
/// naming the op, its sequence number and the rank, as the TCP backend does. <para>cuda tensors (on this group's
/// device) go to NCCL in place, on the context's stream; CPU tensors are staged through device memory (a host-device
/// round trip per op), so CPU-side code can run over NCCL unchanged.</para></summary>
public sealed partial class NcclProcessGroup : IProcessGroup
{
    private readonly CudaContext _context;
    private readonly IStore _store;
    private readonly string _prefix;
    private readonly TimeSpan _timeout;
    private readonly BlockingCollection<Action> _queue = new();
    private readonly Thread _worker;
    private long _seq;
    private int _nextGroup;
    private volatile CollectiveException? _failure;
    private IStore? _ownedStore;

    /// <summary>The communicator, for collectives on device buffers (enqueued on the context's stream).</summary>
    public NcclCommunicator Communicator { get; }

    /// <inheritdoc/>
    public int Rank => Communicator.Rank;

    /// <inheritdoc/>
    public int Size => Communicator.Size;

    /// <inheritdoc/>
    public string Backend => "nccl";

    private NcclProcessGroup(CudaContext context, NcclCommunicator comm, IStore store, string prefix, TimeSpan timeout)
    {
        _context = context;
        Communicator = comm;
        _store = store;
        _prefix = prefix;
        _timeout = timeout;
        _worker = new Thread(Work) { IsBackground = true, Name = $"nccl-rank{comm.Rank}" };
        _worker.Start();
    }

    /// <summary>Joins the group of <paramref name="size"/> ranks: rank 0 publishes NCCL's unique id through
    /// <paramref name="store"/>. <paramref name="timeout"/> is every op's default (10 minutes, like c10d).</summary>
    public static NcclProcessGroup Connect(
        CudaContext context,
        IStore store,
        int rank,
        int size,
        TimeSpan? timeout = null,
        string prefix = "nccl"
    )
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(store);
        if (size < 1 || rank < 0 || rank >= size)
            throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is not in a world of size {size}");
        var comm = NcclCommunicator.Create(context, store, rank, size, $"{prefix}/unique-id");
        return new NcclProcessGroup(context, comm, store, prefix, timeout ?? TimeSpan.FromMinutes(10));
    }

    /// <summary>Joins the job the environment describes (torchrun, OpenMPI, Slurm or PMI variables; see
    /// <see cref="DistributedEnvironment.Resolve"/>): rank 0 serves the store at MASTER_ADDR:MASTER_PORT, through which
    /// NCCL's unique id travels. The group owns that store.</summary>
    /// <summary>The store settings (job token and id) of the transport's environment options.</summary>
    private static StoreOptions StoreSettings(TcpOptions tcp) => new() { Token = tcp.Token, JobId = tcp.JobId };

    /// <summary>The NCCL group of the job a launcher started (torchrun variables, mpirun, srun or PMI), on <paramref
    /// name="context"/>'s device; the unique id travels through the job's TCP store.</summary>
    public static NcclProcessGroup InitFromEnvironment(CudaContext context, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        var env = DistributedEnvironment.Resolve();
        var store = TcpStore.Create(
            env.MasterAddr,
            env.MasterPort,
            isServer: env.Rank == 0,
            StoreSettings(TcpOptions.FromEnvironment(env.MasterAddr))
        );
        try
        {
            var pg = Connect(context, store, env.Rank, env.WorldSize, timeout);
            pg._ownedStore = store;
            return pg;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public IProcessGroup? NewGroup(IReadOnlyList<int> ranks)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        if (ranks.Count == 0 || ranks.Distinct().Count() != ranks.Count || ranks.Any(r => r < 0 || r >= Size))
            throw new ArgumentException(
                $"new_group: ranks [{string.Join(", ", ranks)}] must be distinct ranks of this group (0..{Size - 1})"
            );
        int id = Interlocked.Increment(ref _nextGroup); // every rank calls NewGroup in the same order, so ids agree
        int me = ranks.ToList().IndexOf(Rank);
        if (me < 0)
            return null;
        var prefix = $"{_prefix}/group{id}";
        var comm = NcclCommunicator.Create(_context, _store, me, ranks.Count, $"{prefix}/unique-id");
        return new NcclProcessGroup(_context, comm, _store, prefix, _timeout);
    }

    private void Work()
    {
        foreach (var op in _queue.GetConsumingEnumerable())
            op();
    }

    /// <summary>Queues <paramref name="body"/> as op <paramref name="name"/>; it runs after every op issued before
    /// it.</summary>
    private Work Run(string name, TimeSpan? timeout, Action<TimeSpan> body)
    {
        long seq = Interlocked.Increment(ref _seq);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var limit = timeout ?? _timeout;
        void Execute()
        {
            if (_failure is { } dead)
            {
                done.TrySetException(
                    new CollectiveException(
                        name,
                        seq,
                        Rank,
                        null,
                        $"the nccl communicator was aborted earlier: {dead.Message}",
                        dead
                    )
                );
                return;
            }
            try
            {
                body(limit);
                done.TrySetResult();
            }
            catch (Exception e)
            {
                var ce = new CollectiveException(name, seq, Rank, null, e.Message, e);
                if (e is CollectiveException or NcclException)
                    _failure ??= ce; // the communicator is gone for later ops too
                done.TrySetException(ce);
            }
        }
        try
        {
            _queue.Add(Execute);
        }
        catch (InvalidOperationException)
        {
            throw new ObjectDisposedException(nameof(NcclProcessGroup), "the nccl process group was disposed");
        }
        return HpcEngine.Distributed.Work.FromTask(done.Task);
    }

    private void CheckTensor(string op, Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t, op);
        BackendTensors.ThrowIfDisposed(t);
        if (!t.IsContiguous)
            throw new ArgumentException($"{op}: the tensor must be contiguous (call Contiguous() first)");
        if (t.DType == DType.Bool)
            throw new NotSupportedException($"nccl does not support {op} over bool tensors");
        if (t.Device.Type == DeviceType.Cuda && t.Device.Index != _context.Device.Index)
            throw new DeviceMismatchException(
                $"{op}: the tensor is on {t.Device} but this nccl group runs on cuda:{_context.Device.Index}"
            );
        if (t.Device.Type is not (DeviceType.Cpu or DeviceType.Cuda))
            throw new DeviceMismatchException($"{op}: nccl takes cuda or CPU tensors, not {t.Device}");
    }

    /// <summary>bf16/fp16 CPU tensors are summed in fp32 (staged wide); cuda ones are reduced by NCCL in their
    /// dtype.</summary>
    private static bool Narrow(Tensor t) =>
        t.Device.Type == DeviceType.Cpu && t.DType is DType.BFloat16 or DType.Float16;

    /// <summary>NCCL averages floating types only; integers are summed and divided (truncating), as the TCP backend
    /// does.</summary>
    private static ReduceOp NcclOp(ReduceOp op, DType dtype) =>
        op == ReduceOp.Avg && !dtype.IsFloating() ? ReduceOp.Sum : op;

    private static void Finish(Tensor t, ReduceOp requested, ReduceOp ran, int size)
    {
        if (requested == ReduceOp.Avg && ran == ReduceOp.Sum)
            using (var q = Ops.DivScalar(t, size))
                Ops.CopyInto(t, q);
    }

    /// <summary>The device memory of an input: a cuda tensor's own, or a staged copy of a CPU tensor's bytes.</summary>
    private DeviceBuffer Stage(Tensor t)
    {
        if (t.Device.Type != DeviceType.Cpu)
            return DeviceBuffer.View(_context, CudaDeviceBackend.Ptr(t), (long)t.NumEl * t.DType.SizeOf());
        var bytes = BackendTensors.HostBytes(t);
        var buffer = _context.Allocate(bytes.Length);
        _context.CopyFromHost(buffer, 0, bytes.Span);
        return buffer;
    }

    /// <summary>The device memory an output is written to: a cuda tensor's own, or a fresh buffer for a CPU
    /// one.</summary>
    private DeviceBuffer Output(Tensor t) =>
        t.Device.Type != DeviceType.Cpu
            ? DeviceBuffer.View(_context, CudaDeviceBackend.Ptr(t), (long)t.NumEl * t.DType.SizeOf())
            : _context.Allocate((long)t.NumEl * t.DType.SizeOf());

    /// <summary>Brings a result home to a CPU tensor (a cuda tensor already holds it).</summary>
    private void Collect(DeviceBuffer from, Tensor into)
    {
        if (into.Device.Type == DeviceType.Cpu)
            _context.CopyToHost(BackendTensors.HostBytes(into).Span, from, 0);
    }

    /// <inheritdoc/>
    public Work AllReduce(Tensor tensor, AllReduceOptions? options = null)
    {
        CheckTensor("allreduce", tensor);
        var o = options ?? new AllReduceOptions();
        return Run("allreduce", o.Timeout, limit =>
        {
            // bf16/fp16 accumulate in fp32 unless the caller asks for 16-bit values on the wire.
            using var wide = Narrow(tensor) && !o.NarrowWire ? BackendTensors.Cast(tensor, DType.Float32) : null;
            var t = wide ?? tensor;
            var op = NcclOp(o.Op, t.DType);
            using var buffer = Stage(t);
            Communicator.AllReduce(buffer, t.NumEl, t.DType, op);
            Communicator.Wait(limit);
            Collect(buffer, t);
            Finish(t, o.Op, op, Size);
            if (wide != null)
                Ops.CopyInto(tensor, wide);
        });
    }

    /// <inheritdoc/>
    public Work Broadcast(Tensor tensor, BroadcastOptions? options = null)
    {
        CheckTensor("broadcast", tensor);
        var o = options ?? new BroadcastOptions();
        CheckRank("broadcast", o.Root);
        return Run("broadcast", o.Timeout, limit =>
        {
            using var buffer = Stage(tensor);
            Communicator.Broadcast(buffer, tensor.NumEl, tensor.DType, o.Root);
            Communicator.Wait(limit);
            Collect(buffer, tensor);
        });
    }

    /// <inheritdoc/>
    public Work Reduce(Tensor tensor, ReduceOptions? options = null)
    {
        CheckTensor("reduce", tensor);
        var o = options ?? new ReduceOptions();
        CheckRank("reduce", o.Root);
        return Run("reduce", o.Timeout, limit =>
        {
            using var wide = Narrow(tensor) ? BackendTensors.Cast(tensor, DType.Float32) : null;
            var t = wide ?? tensor;
            var op = NcclOp(o.Op, t.DType);
            using var buffer = Stage(t);
            Communicator.Reduce(buffer, t.NumEl, t.DType, op, o.Root);
            Communicator.Wait(limit);
            if (Rank != o.Root)
                return;
            Collect(buffer, t);
            Finish(t, o.Op, op, Size);
            if (wide != null)
                Ops.CopyInto(tensor, wide);
        });
    }

    /// <inheritdoc/>
    public Work AllGather(Tensor output, Tensor input, CollectiveOptions? options = null)
    {
        CheckTensor("allgather", output);
        CheckTensor("allgather", input);
        CollectiveShapes.AllGather(Size, output, input);
        return Run("allgather", options?.Timeout, limit =>
        {
            using var send = Stage(input);
            using var recv = Output(output);
            Communicator.AllGather(recv, send, input.NumEl, input.DType);
            Communicator.Wait(limit);
            Collect(recv, output);
        });
    }

    /// <inheritdoc/>
    public Work ReduceScatter(Tensor output, Tensor input, ReduceScatterOptions? options = null)
    {
        CheckTensor("reduce_scatter", output);
        CheckTensor("reduce_scatter", input);
        var o = options ?? new ReduceScatterOptions();
        CollectiveShapes.ReduceScatter(Size, output, input);
        return Run("reduce_scatter", o.Timeout, limit =>
        {
            using var wi = Narrow(input) ? BackendTensors.Cast(input, DType.Float32) : null;
            using var wo = Narrow(input) ? BackendTensors.Empty(output.Shape, DType.Float32, Device.Cpu) : null;
            Tensor i = wi ?? input,
                t = wo ?? output;
            var op = NcclOp(o.Op, t.DType);
            using var send = Stage(i);
            using var recv = Output(t);
            Communicator.ReduceScatter(recv, send, t.NumEl, t.DType, op);
            Communicator.Wait(limit);
            Collect(recv, t);
            Finish(t, o.Op, op, Size);
            if (wo != null)
                Ops.CopyInto(output, wo);
        });
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _queue.CompleteAdding();
        if (Thread.CurrentThread != _worker)
            _worker.Join(TimeSpan.FromSeconds(30));
        Communicator.Dispose();
        _queue.Dispose();
        _ownedStore?.Dispose();
    }
}
