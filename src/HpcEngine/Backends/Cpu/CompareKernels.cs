using System.Numerics;

namespace HpcEngine.Backends.Cpu;

/// <summary>Broadcast comparisons and logical ops; the result is a bool tensor (one byte per element).</summary>
internal static unsafe class CompareKernels
{
    public static void Run<T>(CompareOp op, Tensor a, Tensor b, Tensor dst) where T : unmanaged, INumber<T>
    {
        var shape = dst.Shape;
        var loop = new StridedLoop(shape, dst.Strides.ToArray(),
            Shapes.BroadcastStrides(a.Shape, a.Strides, shape), Shapes.BroadcastStrides(b.Shape, b.Strides, shape));
        T* pa = a.Ptr<T>(), pb = b.Ptr<T>();
        byte* pd = dst.Ptr<byte>();
        int sd = loop.Stride0, sa = loop.Stride1, sb = loop.Stride2;
        loop.Run((od, oa, ob, n) =>
        {
            T* x = pa + oa, y = pb + ob;
            byte* d = pd + od;
            for (int i = 0; i < n; i++)
            {
                T u = x[(long)i * sa], v = y[(long)i * sb];
                bool r = op switch
                {
                    CompareOp.Eq => u == v,
                    CompareOp.Ne => u != v,
                    CompareOp.Lt => u < v,
                    CompareOp.Le => u <= v,
                    CompareOp.Gt => u > v,
                    CompareOp.Ge => u >= v,
                    CompareOp.And => u != T.Zero && v != T.Zero,
                    CompareOp.Or => u != T.Zero || v != T.Zero,
                    CompareOp.Xor => (u != T.Zero) ^ (v != T.Zero),
                    _ => false,
                };
                d[(long)i * sd] = r ? (byte)1 : (byte)0;
            }
        });
    }

    /// <summary>dst = cond ? a : b with broadcasting over all three (a, b, dst same dtype, element size es).</summary>
    public static void Where(Tensor cond, Tensor a, Tensor b, Tensor dst)
    {
        var shape = dst.Shape;
        int es = dst.DType.SizeOf();
        // Four operands exceed the strided loop's three, so walk dst's linear index with an odometer.
        byte* pc = cond.Ptr<byte>(), pa = a.BytePtr, pb = b.BytePtr, pd = dst.BytePtr;
        var cs = Shapes.BroadcastStrides(cond.Shape, cond.Strides, shape);
        var asx = Shapes.BroadcastStrides(a.Shape, a.Strides, shape);
        var bs = Shapes.BroadcastStrides(b.Shape, b.Strides, shape);
        int n = dst.NumEl, rank = shape.Length;
        var dims = shape.ToArray();
        CpuThreads.For(n, n, (s, e) =>
        {
            Span<int> idx = stackalloc int[Math.Max(rank, 1)];
            int r = s;
            for (int d = rank - 1; d >= 0; d--) { idx[d] = r % dims[d]; r /= dims[d]; }
            for (int i = s; i < e; i++)
            {
                long oc = 0, oa = 0, ob = 0;
                for (int d = 0; d < rank; d++) { oc += (long)idx[d] * cs[d]; oa += (long)idx[d] * asx[d]; ob += (long)idx[d] * bs[d]; }
                byte* src = pc[oc] != 0 ? pa + oa * es : pb + ob * es;
                Buffer.MemoryCopy(src, pd + (long)i * es, es, es);
                for (int d = rank - 1; d >= 0; d--)
                {
                    if (++idx[d] < dims[d]) break;
                    idx[d] = 0;
                }
            }
        });
    }
}
