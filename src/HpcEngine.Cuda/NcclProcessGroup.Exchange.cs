using HpcEngine.Cuda.Interop;
using HpcEngine.Distributed;

namespace HpcEngine.Cuda;

/// <summary>All-to-all, point-to-point and the barrier of the NCCL group, and the checks of their arguments.</summary>
public sealed partial class NcclProcessGroup
{
    /// <inheritdoc/>
    public Work AllToAll(Tensor output, Tensor input, CollectiveOptions? options = null)
    {
        CheckTensor("alltoall", output);
        CheckTensor("alltoall", input);
        CollectiveShapes.AllToAll(Size, output, input);
        return Run("alltoall", options?.Timeout, limit =>
        {
            long block = (long)input.NumEl / Size * input.DType.SizeOf();
            using var send = Stage(input);
            using var recv = Output(output);
            NcclCommunicator.GroupStart();
            try
            {
                for (int r = 0; r < Size; r++)
                {
                    Communicator.Send(send, r * block, block, r);
                    Communicator.Recv(recv, r * block, block, r);
                }
            }
            finally
            {
                NcclCommunicator.GroupEnd();
            }
            Communicator.Wait(limit);
            Collect(recv, output);
        });
    }

    /// <inheritdoc/>
    public Work Send(Tensor tensor, int dst, int tag = 0, CollectiveOptions? options = null)
    {
        CheckTensor("send", tensor);
        CheckPeer("send", dst, tag);
        return Run("send", options?.Timeout, limit =>
        {
            using var buffer = Stage(tensor);
            Communicator.Send(buffer, 0, buffer.Bytes, dst);
            Communicator.Wait(limit);
        });
    }

    /// <inheritdoc/>
    public Work Recv(Tensor tensor, int src, int tag = 0, CollectiveOptions? options = null)
    {
        CheckTensor("recv", tensor);
        CheckPeer("recv", src, tag);
        return Run("recv", options?.Timeout, limit =>
        {
            using var buffer = Output(tensor);
            Communicator.Recv(buffer, 0, buffer.Bytes, src);
            Communicator.Wait(limit);
            Collect(buffer, tensor);
        });
    }

    /// <inheritdoc/>
    public Work Barrier(CollectiveOptions? options = null)
    {
        return Run("barrier", options?.Timeout, limit =>
        {
            using var one = _context.Allocate(4);
            _context.CopyFromHost(one, 0, BitConverter.GetBytes(1));
            Communicator.AllReduce(one, 1, DType.Int32);
            Communicator.Wait(limit);
        });
    }

    private void CheckRank(string op, int root)
    {
        if (root < 0 || root >= Size)
            throw new ArgumentOutOfRangeException(
                nameof(root),
                $"{op}: root {root} is not a rank of this group (0..{Size - 1})"
            );
    }

    private void CheckPeer(string op, int peer, int tag)
    {
        if (peer < 0 || peer >= Size || peer == Rank)
            throw new ArgumentOutOfRangeException(
                nameof(peer),
                $"{op}: peer {peer} must be another rank of this group (0..{Size - 1}, not {Rank})"
            );
        if (tag != 0)
            throw new NotSupportedException(
                $"nccl does not support tagged {op} (tag {tag}): NCCL matches sends and receives by order per peer; "
                    + $"use tag 0, or the tcp backend for tags"
            );
    }
}
