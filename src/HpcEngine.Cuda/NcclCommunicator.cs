using System.Runtime.InteropServices;
using HpcEngine.Cuda.Interop;
using HpcEngine.Distributed;

namespace HpcEngine.Cuda;

/// <summary>An NCCL communicator over the ranks of a store rendezvous, running collectives on device buffers on a
/// context's stream. Rank 0 creates the unique id and publishes it through the store (the same TcpStore the TCP
/// backend uses). <see cref="Wait"/> synchronises the stream with a timeout: past it, or on an asynchronous NCCL error,
/// the communicator is aborted and a <see cref="CollectiveException"/> is raised, as the TCP backend does.
/// The first piece of the NCCL process group (issue #4); device tensors will route through it.</summary>
public sealed unsafe class NcclCommunicator : IDisposable
{
    private readonly NcclCommHandle _owned;
    private IntPtr _comm;
    private readonly CudaContext _context;

    /// <summary>This rank in the communicator.</summary>
    public int Rank { get; }

    /// <summary>Ranks in the communicator.</summary>
    public int Size { get; }

    private NcclCommunicator(CudaContext context, NcclCommHandle comm, int rank, int size) =>
        (_context, _owned, _comm, Rank, Size) = (context, comm, comm.DangerousGetHandle(), rank, size);

    /// <summary>NCCL's version (e.g. 22800 for 2.28.0).</summary>
    public static int Version
    {
        get
        {
            CudaLibraries.Require("nccl");
            Nccl.Check(Nccl.ncclGetVersion(out int v));
            return v;
        }
    }

    /// <summary>Joins the communicator of <paramref name="size"/> ranks; every rank calls it with the same
    /// <paramref name="key"/>.</summary>
    public static NcclCommunicator Create(
        CudaContext context,
        IStore store,
        int rank,
        int size,
        string key = "nccl/unique-id"
    )
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(store);
        CudaLibraries.Require("nccl");
        Nccl.UniqueId id;
        if (rank == 0)
        {
            Nccl.Check(Nccl.ncclGetUniqueId(out id));
            var bytes = new byte[128];
            new ReadOnlySpan<byte>(id.Internal, 128).CopyTo(bytes);
            store.Set(key, bytes);
        }
        else
        {
            var bytes = store.Get(key);
            if (bytes.Length != 128)
                throw new CollectiveException($"nccl: the unique id under '{key}' has {bytes.Length} bytes, not 128");
            id = default;
            bytes.CopyTo(new Span<byte>(id.Internal, 128));
        }
        context.MakeCurrent();
        Nccl.Check(Nccl.ncclCommInitRank(out var comm, size, id, rank));
        return new NcclCommunicator(
            context,
            ContextBoundHandle.Own<NcclCommHandle>(context.ContextHandle, comm),
            rank,
            size
        );
    }

    private static int DataType(DType dtype) =>
        dtype switch
        {
            DType.Float32 => Nccl.Float32,
            DType.Float64 => Nccl.Float64,
            DType.Float16 => Nccl.Float16,
            DType.BFloat16 => Nccl.BFloat16,
            DType.Int32 => Nccl.Int32,
            DType.Int64 => Nccl.Int64,
            DType.UInt8 => Nccl.UInt8,
            _ => throw new NotSupportedException($"nccl does not reduce {dtype.TorchName()} tensors"),
        };

    private static int Op(ReduceOp op) =>
        op switch
        {
            ReduceOp.Sum => Nccl.Sum,
            ReduceOp.Avg => Nccl.Avg,
            ReduceOp.Max => Nccl.Max,
            ReduceOp.Min => Nccl.Min,
            ReduceOp.Product => Nccl.Prod,
            _ => throw new ArgumentOutOfRangeException(nameof(op)),
        };

    /// <summary>In-place allreduce of <paramref name="count"/> elements, enqueued on the context's stream.</summary>
    public void AllReduce(DeviceBuffer buffer, long count, DType dtype, ReduceOp op = ReduceOp.Sum)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        CheckFits(buffer, count, dtype);
        _context.MakeCurrent();
        Nccl.Check(
            Nccl.ncclAllReduce(
                buffer.Pointer,
                buffer.Pointer,
                (nuint)count,
                DataType(dtype),
                Op(op),
                _comm,
                _context.Stream
            )
        );
    }

    /// <summary>Broadcasts <paramref name="count"/> elements of <paramref name="buffer"/> from rank <paramref
    /// name="root"/>, in place, on the communicator's stream.</summary>
    public void Broadcast(DeviceBuffer buffer, long count, DType dtype, int root)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        CheckFits(buffer, count, dtype);
        _context.MakeCurrent();
        Nccl.Check(
            Nccl.ncclBroadcast(
                buffer.Pointer,
                buffer.Pointer,
                (nuint)count,
                DataType(dtype),
                root,
                _comm,
                _context.Stream
            )
        );
    }

    /// <summary><paramref name="output"/> (Size × count) receives every rank's <paramref name="input"/> in rank
    /// order.</summary>
    public void AllGather(DeviceBuffer output, DeviceBuffer input, long count, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(input);
        CheckFits(input, count, dtype);
        CheckFits(output, count * Size, dtype);
        _context.MakeCurrent();
        Nccl.Check(
            Nccl.ncclAllGather(input.Pointer, output.Pointer, (nuint)count, DataType(dtype), _comm, _context.Stream)
        );
    }

    /// <summary>Reduces every rank's <paramref name="buffer"/> into the root's (in place).</summary>
    public void Reduce(DeviceBuffer buffer, long count, DType dtype, ReduceOp op, int root)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        CheckFits(buffer, count, dtype);
        _context.MakeCurrent();
        Nccl.Check(
            Nccl.ncclReduce(
                buffer.Pointer,
                buffer.Pointer,
                (nuint)count,
                DataType(dtype),
                Op(op),
                root,
                _comm,
                _context.Stream
            )
        );
    }

    /// <summary><paramref name="output"/> (count) receives the reduction of every rank's slice [Rank] of
    /// <paramref name="input"/> (Size × count).</summary>
    public void ReduceScatter(DeviceBuffer output, DeviceBuffer input, long count, DType dtype, ReduceOp op)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(input);
        CheckFits(output, count, dtype);
        CheckFits(input, count * Size, dtype);
        _context.MakeCurrent();
        Nccl.Check(
            Nccl.ncclReduceScatter(
                input.Pointer,
                output.Pointer,
                (nuint)count,
                DataType(dtype),
                Op(op),
                _comm,
                _context.Stream
            )
        );
    }

    /// <summary>Point-to-point send of <paramref name="bytes"/> bytes at <paramref name="offset"/> (matched by order
    /// per peer: NCCL has no tags).</summary>
    public void Send(DeviceBuffer buffer, long offset, long bytes, int peer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        CheckRange(buffer, offset, bytes);
        _context.MakeCurrent();
        Nccl.Check(
            Nccl.ncclSend(buffer.Pointer + (ulong)offset, (nuint)bytes, Nccl.UInt8, peer, _comm, _context.Stream)
        );
    }

    /// <summary>Receives <paramref name="bytes"/> bytes from rank <paramref name="peer"/> into <paramref
    /// name="buffer"/> at <paramref name="offset"/>.</summary>
    public void Recv(DeviceBuffer buffer, long offset, long bytes, int peer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        CheckRange(buffer, offset, bytes);
        _context.MakeCurrent();
        Nccl.Check(
            Nccl.ncclRecv(buffer.Pointer + (ulong)offset, (nuint)bytes, Nccl.UInt8, peer, _comm, _context.Stream)
        );
    }

    /// <summary>Fuses the sends and receives issued until <see cref="GroupEnd"/> into one launch (so a rank can send
    /// and receive at once without deadlock, as all-to-all needs).</summary>
    public static void GroupStart() => Nccl.Check(Nccl.ncclGroupStart());

    /// <summary>Launches the sends and receives issued since <see cref="GroupStart"/>.</summary>
    public static void GroupEnd() => Nccl.Check(Nccl.ncclGroupEnd());

    private static void CheckRange(DeviceBuffer b, long offset, long bytes)
    {
        if (offset < 0 || bytes < 0 || offset + bytes > b.Bytes)
            throw new ArgumentOutOfRangeException(
                nameof(bytes),
                $"bytes [{offset}, {offset + bytes}) are outside a {b.Bytes}-byte buffer"
            );
    }

    private static void CheckFits(DeviceBuffer b, long count, DType dtype)
    {
        if (count < 0 || count * dtype.SizeOf() > b.Bytes)
            throw new ArgumentOutOfRangeException(
                nameof(count),
                $"{count} {dtype.TorchName()} elements do not fit a {b.Bytes}-byte buffer"
            );
    }

    /// <summary>Waits for the queued collectives; a timeout or an asynchronous NCCL error aborts the communicator and
    /// raises a <see cref="CollectiveException"/> naming the rank.</summary>
    public void Wait(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        _context.MakeCurrent();
        using var evtHandle = EventHandle.Create(
            _context.ContextHandle,
            2 /* disable timing */
        );
        IntPtr evt = evtHandle.DangerousGetHandle();
        Driver.Check(Driver.cuEventRecord(evt, _context.Stream));
        while (true)
        {
            int status = Driver.cuEventQuery(evt);
            if (status == Driver.Success)
                return;
            if (status != Driver.ErrorNotReady)
                Driver.Check(status);
            Nccl.Check(Nccl.ncclCommGetAsyncError(_comm, out int async));
            if (async != Nccl.Success && async != Nccl.InProgress)
            {
                Abort();
                throw new CollectiveException(
                    $"nccl rank {Rank}: asynchronous error {Nccl.ErrorString(async)} ({async}); the communicator was "
                        + $"aborted"
                );
            }
            if (DateTime.UtcNow > deadline)
            {
                Abort();
                throw new CollectiveException(
                    $"nccl rank {Rank}: collectives did not complete within {timeout.TotalSeconds:F1}s; the "
                        + $"communicator was aborted"
                );
            }
            Thread.Sleep(1);
        }
    }

    private void Abort()
    {
        if (_comm == IntPtr.Zero)
            return;
        _owned.Abort();
        _comm = IntPtr.Zero;
        _owned.Dispose();
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_comm == IntPtr.Zero)
            return;
        _comm = IntPtr.Zero;
        _owned.Dispose();
    }
}
