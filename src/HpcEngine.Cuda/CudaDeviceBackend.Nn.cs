using System.Runtime.InteropServices;
using HpcEngine.Backends;
using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda;

/// <summary>Convolution, pooling, embedding and the optimizer steps (conv.cu, pool.cu, embedding.cu,
/// optim.cu).</summary>
internal sealed unsafe partial class CudaDeviceBackend
{
    public void SgdStep(
        Tensor p,
        Tensor g,
        Tensor? buffer,
        Tensor lr,
        double momentum,
        double dampening,
        double weightDecay,
        bool nesterov,
        bool first
    )
    {
        Float32("sgd", p, g, lr);
        if (p.NumEl == 0)
            return;
        context.Launch(
            Kernel("optim.cu", "sgd_f32"),
            Grid(p.NumEl),
            Block,
            0,
            Ptr(p),
            Ptr(g),
            buffer != null ? Ptr(buffer) : 0UL,
            (long)p.NumEl,
            Ptr(lr),
            (float)momentum,
            (float)dampening,
            (float)weightDecay,
            nesterov ? 1 : 0,
            first ? 1 : 0
        );
    }

    public void AdamStep(
        Tensor p,
        Tensor g,
        Tensor m,
        Tensor v,
        Tensor step,
        Tensor lr,
        double beta1,
        double beta2,
        double eps,
        double weightDecay,
        bool decoupled
    )
    {
        Float32("adam", p, g, m, v, step, lr);
        // t += 1 and [1 − β1^t, 1 − β2^t] on the device (one thread, double precision), then the fused update reads
        // them.
        using var bias = BackendTensors.Empty([2], DType.Float32, p.Device);
        context.Launch(Kernel("optim.cu", "adam_advance_f32"), 1, 32, 0, Ptr(step), Ptr(bias), beta1, beta2);
        if (p.NumEl == 0)
            return;
        context.Launch(
            Kernel("optim.cu", "adam_f32"),
            Grid(p.NumEl),
            Block,
            0,
            Ptr(p),
            Ptr(g),
            Ptr(m),
            Ptr(v),
            (long)p.NumEl,
            Ptr(lr),
            (float)beta1,
            (float)beta2,
            (float)eps,
            (float)weightDecay,
            decoupled ? 1 : 0,
            Ptr(bias)
        );
    }

    /// <summary>native/kernels/conv.cu's struct ConvShape.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ConvShape
    {
        public int C,
            H,
            W,
            KH,
            KW,
            SH,
            SW,
            PH,
            PW,
            DH,
            DW,
            OH,
            OW;
    }

    /// <summary>native/kernels/pool.cu's struct PoolShape (dilation last: max pooling's; average pooling has
    /// none).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct PoolShape
    {
        public int Planes,
            H,
            W,
            KH,
            KW,
            SH,
            SW,
            PH,
            PW,
            OH,
            OW,
            DH,
            DW;
    }

    private static ConvShape Shape(Conv2dGeometry g) =>
        new()
        {
            C = g.C,
            H = g.H,
            W = g.W,
            KH = g.KH,
            KW = g.KW,
            SH = g.SH,
            SW = g.SW,
            PH = g.PH,
            PW = g.PW,
            DH = g.DH,
            DW = g.DW,
            OH = g.OH,
            OW = g.OW,
        };

    public void Im2Col(Tensor x, int group, int cg, Conv2dGeometry geo, Tensor cols)
    {
        Float32("conv2d", x, cols);
        if (cols.NumEl == 0)
            return;
        context.Launch(
            Kernel("conv.cu", "im2col_batch_f32"),
            Grid(cols.NumEl),
            Block,
            0,
            Ptr(x),
            Ptr(cols),
            Shape(geo),
            (long)x.Shape[0],
            x.Shape[1],
            group * cg
        );
    }

    public void Col2Im(Tensor cols, int group, int cg, Conv2dGeometry geo, Tensor dx)
    {
        Float32("conv2d backward", cols, dx);
        long n = (long)dx.Shape[0] * cg * geo.H * geo.W;
        if (n == 0)
            return;
        context.Launch(
            Kernel("conv.cu", "col2im_batch_f32"),
            Grid(n),
            Block,
            0,
            Ptr(cols),
            Ptr(dx),
            Shape(geo),
            (long)dx.Shape[0],
            dx.Shape[1],
            group * cg
        );
    }

    private static PoolShape Pool(int planes, Conv2dGeometry g)
    {
        return new PoolShape
        {
            Planes = planes,
            H = g.H,
            W = g.W,
            KH = g.KH,
            KW = g.KW,
            SH = g.SH,
            SW = g.SW,
            PH = g.PH,
            PW = g.PW,
            OH = g.OH,
            OW = g.OW,
            DH = g.DH,
            DW = g.DW,
        };
    }

    public Tensor MaxPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo)
    {
        Float32("max_pool2d", x, y);
        var shape = Pool(planes, geo);
        var indices = BackendTensors.Empty(y.Shape, DType.Int32, y.Device); // the kernel's argmax is an int per output
        if (y.NumEl > 0)
            context.Launch(
                Kernel("pool.cu", "maxpool2d_f32"),
                Grid(y.NumEl),
                Block,
                0,
                Ptr(x),
                Ptr(y),
                Ptr(indices),
                shape
            );
        return indices;
    }

    public void MaxPoolBackward(Tensor gy, Tensor indices, Tensor dx, int planes, Conv2dGeometry geo)
    {
        Float32("max_pool2d backward", gy, dx);
        if (gy.NumEl == 0)
            return;
        context.Launch(
            Kernel("pool.cu", "maxpool2d_backward_f32"),
            Grid(gy.NumEl),
            Block,
            0,
            Ptr(gy),
            Ptr(indices),
            Ptr(dx),
            Pool(planes, geo)
        );
    }

    public void Embedding(Tensor weight, Tensor ids, Tensor output)
    {
        Float32("embedding", weight, output);
        int count = output.Shape[0],
            dim = output.Shape[1];
        if (count == 0 || dim == 0)
            return;
        context.Launch(
            Kernel("embedding.cu", "embedding_f32"),
            Rows(count),
            Block,
            0,
            Ptr(weight),
            Ptr(ids),
            Ptr(output),
            (long)count,
            (long)dim,
            (long)weight.Shape[0]
        );
    }

    public void EmbeddingBackward(Tensor dout, Tensor ids, Tensor dweight)
    {
        Float32("embedding backward", dout, dweight);
        int count = dout.Shape[0],
            dim = dout.Shape[1];
        if (count == 0 || dim == 0)
            return;
        context.Launch(
            Kernel("embedding.cu", "embedding_backward_f32"),
            Rows(count),
            Block,
            0,
            Ptr(dout),
            Ptr(ids),
            Ptr(dweight),
            (long)count,
            (long)dim,
            (long)dweight.Shape[0]
        );
    }

    public void AvgPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Float32("avg_pool2d", x, y);
        if (y.NumEl == 0)
            return;
        context.Launch(
            Kernel("pool.cu", "avgpool2d_f32"),
            Grid(y.NumEl),
            Block,
            0,
            Ptr(x),
            Ptr(y),
            Pool(planes, geo),
            countIncludePad ? 1 : 0
        );
    }

    public void AvgPoolBackward(Tensor gy, Tensor dx, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Float32("avg_pool2d backward", gy, dx);
        if (gy.NumEl == 0)
            return;
        context.Launch(
            Kernel("pool.cu", "avgpool2d_backward_f32"),
            Grid(gy.NumEl),
            Block,
            0,
            Ptr(gy),
            Ptr(dx),
            Pool(planes, geo),
            countIncludePad ? 1 : 0
        );
    }
}
