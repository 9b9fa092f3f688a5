using System.Buffers.Binary;
using System.Numerics;

namespace HpcEngine.Backends.Cpu;

internal sealed unsafe partial class CpuBackend
{
    public void Im2Col(Tensor x, int group, int cg, Conv2dGeometry geo, Tensor cols)
    {
        int n = x.Shape[0],
            l = geo.OH * geo.OW,
            nl = n * l,
            rows = cg * geo.KH * geo.KW;
        bool f32 = x.DType == DType.Float32;
        if (!f32 && x.DType != DType.Float64)
            throw NoKernel("conv2d", x.DType);
        CpuThreads.For(n, (long)n * rows * l, (b0, b1) =>
        {
            for (int b = b0; b < b1; b++)
            {
                long off = ((long)b * x.Shape[1] + group * cg) * geo.H * geo.W;
                if (f32)
                    ConvKernels.Im2Col(x.Ptr<float>() + off, geo, cols.Ptr<float>() + (long)b * l, nl);
                else
                    ConvKernels.Im2Col(x.Ptr<double>() + off, geo, cols.Ptr<double>() + (long)b * l, nl);
            }
        });
    }

    public void Col2Im(Tensor cols, int group, int cg, Conv2dGeometry geo, Tensor dx)
    {
        int n = dx.Shape[0],
            l = geo.OH * geo.OW,
            nl = n * l,
            rows = cg * geo.KH * geo.KW;
        bool f32 = dx.DType == DType.Float32;
        if (!f32 && dx.DType != DType.Float64)
            throw NoKernel("conv2d backward", dx.DType);
        CpuThreads.For(n, (long)n * rows * l, (b0, b1) =>
        {
            for (int b = b0; b < b1; b++)
            {
                long off = ((long)b * dx.Shape[1] + group * cg) * geo.H * geo.W;
                if (f32)
                    ConvKernels.Col2Im(cols.Ptr<float>() + (long)b * l, geo, dx.Ptr<float>() + off, nl);
                else
                    ConvKernels.Col2Im(cols.Ptr<double>() + (long)b * l, geo, dx.Ptr<double>() + off, nl);
            }
        });
    }

    public Tensor MaxPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo)
    {
        var arg = Tensor.Empty(y.Shape, DType.Int64);
        if (y.DType == DType.Float32)
            PoolKernels.MaxForward(x.Ptr<float>(), y.Ptr<float>(), arg.Ptr<long>(), planes, geo);
        else if (y.DType == DType.Float64)
            PoolKernels.MaxForward(x.Ptr<double>(), y.Ptr<double>(), arg.Ptr<long>(), planes, geo);
        else
        {
            arg.Dispose();
            throw NoKernel("max_pool2d", y.DType);
        }
        return arg;
    }

    public void MaxPoolBackward(Tensor gy, Tensor indices, Tensor dx, int planes, Conv2dGeometry geo)
    {
        if (dx.DType == DType.Float32)
            PoolKernels.MaxBackward(gy.Ptr<float>(), indices.Ptr<long>(), dx.Ptr<float>(), planes, geo);
        else if (dx.DType == DType.Float64)
            PoolKernels.MaxBackward(gy.Ptr<double>(), indices.Ptr<long>(), dx.Ptr<double>(), planes, geo);
        else
            throw NoKernel("max_pool2d backward", dx.DType);
    }

    public void AvgPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        if (y.DType == DType.Float32)
            PoolKernels.Avg(x.Ptr<float>(), y.Ptr<float>(), planes, geo, countIncludePad, backward: false);
        else if (y.DType == DType.Float64)
            PoolKernels.Avg(x.Ptr<double>(), y.Ptr<double>(), planes, geo, countIncludePad, backward: false);
        else
            throw NoKernel("avg_pool2d", y.DType);
    }

    public void AvgPoolBackward(Tensor gy, Tensor dx, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        if (dx.DType == DType.Float32)
            PoolKernels.Avg(dx.Ptr<float>(), gy.Ptr<float>(), planes, geo, countIncludePad, backward: true);
        else if (dx.DType == DType.Float64)
            PoolKernels.Avg(dx.Ptr<double>(), gy.Ptr<double>(), planes, geo, countIncludePad, backward: true);
        else
            throw NoKernel("avg_pool2d backward", dx.DType);
    }

    public void Embedding(Tensor weight, Tensor ids, Tensor output)
    {
        int es = weight.DType.SizeOf(),
            dim = output.Shape[1],
            n = ids.NumEl;
        byte* w = weight.BytePtr,
            o = output.BytePtr;
        long* id = ids.Ptr<long>();
        long rowBytes = (long)dim * es;
        CpuThreads.For(n, (long)n * dim, (s, e) =>
        {
            for (int i = s; i < e; i++)
                Buffer.MemoryCopy(w + id[i] * rowBytes, o + i * rowBytes, rowBytes, rowBytes);
        });
    }

    public void EmbeddingBackward(Tensor dout, Tensor ids, Tensor dweight)
    {
        if (dweight.DType == DType.Float32)
            EmbeddingBackward<float>(dout, ids, dweight);
        else if (dweight.DType == DType.Float64)
            EmbeddingBackward<double>(dout, ids, dweight);
        else
            throw NoKernel("embedding backward", dweight.DType);
    }

    /// <summary>Sequential: two ids may name one row, so the rows must not be added concurrently.</summary>
    private static void EmbeddingBackward<T>(Tensor dout, Tensor ids, Tensor dweight)
        where T : unmanaged, INumber<T>
    {
        int dim = dout.Shape[1],
            n = ids.NumEl;
        T* g = dout.Ptr<T>(),
            d = dweight.Ptr<T>();
        long* id = ids.Ptr<long>();
        for (int i = 0; i < n; i++)
        {
            var row = new Span<T>(d + id[i] * dim, dim);
            System.Numerics.Tensors.TensorPrimitives.Add(row, new ReadOnlySpan<T>(g + (long)i * dim, dim), row);
        }
    }

    public void LayerNorm(
        Tensor x,
        Tensor? weight,
        Tensor? bias,
        Tensor y,
        Tensor mean,
        Tensor rstd,
        int rows,
        int n,
        double eps
    )
    {
        if (x.DType == DType.Float32)
            LayerNormKernels.Forward(
                x.Ptr<float>(),
                Ptr<float>(weight),
                Ptr<float>(bias),
                y.Ptr<float>(),
                mean.Ptr<float>(),
                rstd.Ptr<float>(),
                rows,
                n,
                eps
            );
        else if (x.DType == DType.Float64)
            LayerNormKernels.Forward(
                x.Ptr<double>(),
                Ptr<double>(weight),
                Ptr<double>(bias),
                y.Ptr<double>(),
                mean.Ptr<double>(),
                rstd.Ptr<double>(),
                rows,
                n,
                eps
            );
        else
            throw NoKernel("layer_norm", x.DType);
    }

    public void LayerNormBackward(
        Tensor x,
        Tensor? weight,
        Tensor mean,
        Tensor rstd,
        Tensor dy,
        Tensor dx,
        Tensor? dweight,
        Tensor? dbias,
        int rows,
        int n
    )
    {
        if (x.DType == DType.Float32)
            LayerNormKernels.Backward(
                x.Ptr<float>(),
                Ptr<float>(weight),
                mean.Ptr<float>(),
                rstd.Ptr<float>(),
                dy.Ptr<float>(),
                dx.Ptr<float>(),
                Ptr<float>(dweight),
                Ptr<float>(dbias),
                rows,
                n
            );
        else if (x.DType == DType.Float64)
            LayerNormKernels.Backward(
                x.Ptr<double>(),
                Ptr<double>(weight),
                mean.Ptr<double>(),
                rstd.Ptr<double>(),
                dy.Ptr<double>(),
                dx.Ptr<double>(),
                Ptr<double>(dweight),
                Ptr<double>(dbias),
                rows,
                n
            );
        else
            throw NoKernel("layer_norm backward", x.DType);
    }

    public void BatchNorm(
        Tensor x,
        Tensor y,
        int n,
        int c,
        int l,
        Tensor? weight,
        Tensor? bias,
        Tensor mean,
        Tensor rstd,
        bool batchStats,
        double eps
    )
    {
        if (x.DType == DType.Float32)
            BatchNormKernels.Forward(
                x.Ptr<float>(),
                y.Ptr<float>(),
                n,
                c,
                l,
                Ptr<float>(weight),
                Ptr<float>(bias),
                mean.Ptr<float>(),
                rstd.Ptr<float>(),
                batchStats,
                eps
            );
        else if (x.DType == DType.Float64)
            BatchNormKernels.Forward(
                x.Ptr<double>(),
                y.Ptr<double>(),
                n,
                c,
                l,
                Ptr<double>(weight),
                Ptr<double>(bias),
                mean.Ptr<double>(),
                rstd.Ptr<double>(),
                batchStats,
                eps
            );
        else
            throw NoKernel("batch_norm", x.DType);
    }

    public void BatchNormBackward(
        Tensor x,
        Tensor g,
        Tensor? dx,
        Tensor? dweight,
        Tensor? dbias,
        int n,
        int c,
        int l,
        Tensor? weight,
        Tensor mean,
        Tensor rstd,
        bool batchStats
    )
    {
        if (x.DType == DType.Float32)
            BatchNormKernels.Backward(
                x.Ptr<float>(),
                g.Ptr<float>(),
                Ptr<float>(dx),
                Ptr<float>(dweight),
                Ptr<float>(dbias),
                n,
                c,
                l,
                Ptr<float>(weight),
                mean.Ptr<float>(),
                rstd.Ptr<float>(),
                batchStats
            );
        else if (x.DType == DType.Float64)
            BatchNormKernels.Backward(
                x.Ptr<double>(),
                g.Ptr<double>(),
                Ptr<double>(dx),
                Ptr<double>(dweight),
                Ptr<double>(dbias),
                n,
                c,
                l,
                Ptr<double>(weight),
                mean.Ptr<double>(),
                rstd.Ptr<double>(),
                batchStats
            );
        else
            throw NoKernel("batch_norm backward", x.DType);
    }

    private static T* Ptr<T>(Tensor? t)
        where T : unmanaged => t != null ? t.Ptr<T>() : null;

    /// <summary>The device codecs' message formats, element for element as the host codecs write them.</summary>
    public void EncodeMessage(MessageFormat format, Tensor v, Tensor scale, Tensor msg, ulong seed, ulong start)
    {
        var values = v.Span<float>();
        float s = scale.Span<float>()[0];
        var bytes = msg.Span<byte>();
        BinaryPrimitives.WriteSingleLittleEndian(bytes, s);
        for (int i = 0; i < values.Length; i++)
        {
            if (format == MessageFormat.Sign)
            {
                if (i % 8 == 0)
                    bytes[4 + i / 8] = 0;
                if (values[i] >= 0)
                    bytes[4 + i / 8] |= (byte)(1 << (i % 8));
                continue;
            }
            if (s == 0)
            {
                bytes[4 + i] = 0;
                continue;
            }
            double x = values[i] / s * 127;
            double lo = Math.Floor(x);
            double u = Philox.ToUniformDouble(Philox.At(seed, start + (ulong)(i >> 2), i & 3));
            int q = (int)(u < x - lo ? lo + 1 : lo);
            bytes[4 + i] = unchecked((byte)(sbyte)Math.Clamp(q, -127, 127));
        }
    }

    public void DecodeAddMessage(MessageFormat format, Tensor msg, Tensor sum)
    {
        var bytes = msg.Span<byte>();
        var total = sum.Span<float>();
        float s = BinaryPrimitives.ReadSingleLittleEndian(bytes);
        for (int i = 0; i < total.Length; i++)
            total[i] +=
                format == MessageFormat.Sign
                    ? ((bytes[4 + i / 8] & (1 << (i % 8))) != 0 ? s : -s)
                    : (sbyte)bytes[4 + i] * s / 127f;
    }
}
