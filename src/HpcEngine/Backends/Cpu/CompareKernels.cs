using System.Numerics;
using static HpcEngine.Backends.Cpu.CompareOperators;

namespace HpcEngine.Backends.Cpu;

/// <summary>Broadcast comparisons and logical ops; the result is a bool tensor (one byte per element). The rules
/// are operator structs (<see cref="CompareOperators"/>) run by the shared <see cref="BinaryDriver"/>.</summary>
internal static unsafe class CompareKernels
{
    public static void Run<T>(CompareOp op, Tensor a, Tensor b, Tensor dst)
        where T : unmanaged, INumber<T>
    {
        switch (op)
        {
            case CompareOp.Eq:
                BinaryDriver.Run<T, byte, Eq<T>>(a, b, dst);
                break;
            case CompareOp.Ne:
                BinaryDriver.Run<T, byte, Ne<T>>(a, b, dst);
                break;
            case CompareOp.Lt:
                BinaryDriver.Run<T, byte, Lt<T>>(a, b, dst);
                break;
            case CompareOp.Le:
                BinaryDriver.Run<T, byte, Le<T>>(a, b, dst);
                break;
            case CompareOp.Gt:
                BinaryDriver.Run<T, byte, Gt<T>>(a, b, dst);
                break;
            case CompareOp.Ge:
                BinaryDriver.Run<T, byte, Ge<T>>(a, b, dst);
                break;
            case CompareOp.And:
                BinaryDriver.Run<T, byte, And<T>>(a, b, dst);
                break;
            case CompareOp.Or:
                BinaryDriver.Run<T, byte, Or<T>>(a, b, dst);
                break;
            case CompareOp.Xor:
                BinaryDriver.Run<T, byte, Xor<T>>(a, b, dst);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op, "not a comparison op");
        }
    }

    /// <summary>dst = cond ? a : b with broadcasting over all three (a, b, dst same dtype, element size es).</summary>
    public static void Where(Tensor cond, Tensor a, Tensor b, Tensor dst)
    {
        var shape = dst.Shape;
        int es = dst.DType.SizeOf();
        // Four operands exceed the strided loop's three, so walk dst's linear index with an odometer.
        byte* pc = cond.Ptr<byte>(),
            pa = a.BytePtr,
            pb = b.BytePtr,
            pd = dst.BytePtr;
        var cs = Shapes.BroadcastStrides(cond.Shape, cond.Strides, shape);
        var asx = Shapes.BroadcastStrides(a.Shape, a.Strides, shape);
        var bs = Shapes.BroadcastStrides(b.Shape, b.Strides, shape);
        int n = dst.NumEl,
            rank = shape.Length;
        var dims = shape.ToArray();
        CpuThreads.For(n, n, (s, e) =>
        {
            Span<int> idx = stackalloc int[Math.Max(rank, 1)];
            int r = s;
            for (int d = rank - 1; d >= 0; d--)
            {
                idx[d] = r % dims[d];
                r /= dims[d];
            }
            for (int i = s; i < e; i++)
            {
                long oc = 0,
                    oa = 0,
                    ob = 0;
                for (int d = 0; d < rank; d++)
                {
                    oc += (long)idx[d] * cs[d];
                    oa += (long)idx[d] * asx[d];
                    ob += (long)idx[d] * bs[d];
                }
                byte* src = pc[oc] != 0 ? pa + oa * es : pb + ob * es;
                Buffer.MemoryCopy(src, pd + (long)i * es, es, es);
                for (int d = rank - 1; d >= 0; d--)
                {
                    if (++idx[d] < dims[d])
                        break;
                    idx[d] = 0;
                }
            }
        });
    }
}
