namespace HpcEngine.Backends.Cpu;

/// <summary>The one strided driver of every two-operand elementwise kernel (arithmetic and comparisons): broadcast
/// strides, rows from <see cref="StridedLoop"/>, and per row the widest path the strides allow — span-span,
/// span-scalar or scalar-span through the operator's SIMD path, else the operator's scalar rule.</summary>
internal static unsafe class BinaryDriver
{
    public static void Run<TIn, TOut, TOp>(Tensor a, Tensor b, Tensor dst)
        where TIn : unmanaged
        where TOut : unmanaged
        where TOp : IBinaryOperator<TIn, TOut>
    {
        var shape = dst.Shape;
        var loop = new StridedLoop(
            shape,
            dst.Strides.ToArray(),
            Shapes.BroadcastStrides(a.Shape, a.Strides, shape),
            Shapes.BroadcastStrides(b.Shape, b.Strides, shape)
        );
        TIn* pa = a.Ptr<TIn>(),
            pb = b.Ptr<TIn>();
        TOut* pd = dst.Ptr<TOut>();
        int sd = loop.Stride0,
            sa = loop.Stride1,
            sb = loop.Stride2;
        loop.Run(
            (od, oa, ob, n) =>
            {
                TIn* x = pa + oa,
                    y = pb + ob;
                TOut* d = pd + od;
                if (sd == 1 && TryRow<TIn, TOut, TOp>(x, sa, y, sb, new Span<TOut>(d, n)))
                    return;
                for (int i = 0; i < n; i++)
                    d[(long)i * sd] = TOp.Invoke(x[(long)i * sa], y[(long)i * sb]);
            }
        );
    }

    private static bool TryRow<TIn, TOut, TOp>(TIn* x, int sa, TIn* y, int sb, Span<TOut> d)
        where TIn : unmanaged
        where TOut : unmanaged
        where TOp : IBinaryOperator<TIn, TOut>
    {
        int n = d.Length;
        if (sa == 1 && sb == 1)
            return TOp.TryVectorized(new ReadOnlySpan<TIn>(x, n), new ReadOnlySpan<TIn>(y, n), d);
        if (sa == 1 && sb == 0)
            return TOp.TryVectorized(new ReadOnlySpan<TIn>(x, n), *y, d);
        if (sa == 0 && sb == 1)
            return TOp.TryVectorized(*x, new ReadOnlySpan<TIn>(y, n), d);
        return false;
    }
}
