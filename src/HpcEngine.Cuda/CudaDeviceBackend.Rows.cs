using System.Runtime.InteropServices;
using HpcEngine.Backends;
using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda;

/// <summary>Row-wise primitives: sums, max/min, softmax, cross-entropy, layer norm and batch norm (reduce.cu,
/// softmax.cu, layernorm.cu, batchnorm.cu).</summary>
internal sealed unsafe partial class CudaDeviceBackend
{
    public void Sum(Tensor x, int outer, int reduced, int inner, Tensor r, double scale)
    {
        Float32("sum", x, r);
        if (outer == 0 || inner == 0)
            return;
        if (reduced == 0)
        {
            Fill(r, 0);
            return;
        }
        if (inner == 1)
            context.Launch(
                Kernel("reduce.cu", "sum_rows_f32"),
                Rows(outer),
                Block,
                0,
                Ptr(x),
                Ptr(r),
                (long)outer,
                (long)reduced,
                (float)scale
            );
        else if (outer == 1) // the leading dims reduced (a bias gradient): column sums, no transpose
            context.Launch(
                Kernel("reduce.cu", "sum_cols_f32"),
                Grid(inner),
                Block,
                0,
                Ptr(x),
                Ptr(r),
                (long)reduced,
                (long)inner,
                (float)scale
            );
        else
            throw new InvalidOperationException("internal: the cuda sum reduces the last dim, or the leading ones");
    }

    public void Softmax(Tensor x, Tensor y, int rows, int n, bool log)
    {
        Float32(log ? "log_softmax" : "softmax", x, y);
        if (rows == 0 || n == 0)
            return;
        context.Launch(
            Kernel("softmax.cu", log ? "log_softmax_f32" : "softmax_f32"),
            Rows(rows),
            Block,
            0,
            Ptr(x),
            Ptr(y),
            (long)rows,
            (long)n
        );
    }

    public void SoftmaxBackward(Tensor y, Tensor g, Tensor dx, int rows, int n, bool log)
    {
        Float32(log ? "log_softmax backward" : "softmax backward", y, g, dx);
        if (rows == 0 || n == 0)
            return;
        context.Launch(
            Kernel("softmax.cu", log ? "log_softmax_backward_f32" : "softmax_backward_f32"),
            Rows(rows),
            Block,
            0,
            Ptr(y),
            Ptr(g),
            Ptr(dx),
            (long)rows,
            (long)n
        );
    }

    public void CrossEntropy(
        Tensor logits,
        Tensor targets,
        Tensor rowLoss,
        Tensor dlogits,
        long ignoreIndex,
        double smoothing,
        Tensor? counted
    )
    {
        Float32("cross_entropy", logits, rowLoss, dlogits);
        if (targets.DType != DType.Int64)
            throw new DTypeMismatchException("cross_entropy on cuda: targets must be int64");
        int rows = logits.Shape[0],
            cols = logits.Shape[1];
        if (counted != null)
            context.Launch(
                Kernel("softmax.cu", "count_targets_f32"),
                1,
                Block,
                0,
                Ptr(targets),
                (long)rows,
                ignoreIndex,
                Ptr(counted)
            );
        if (rows == 0)
            return;
        context.Launch(
            Kernel("softmax.cu", "cross_entropy_f32"),
            Rows(rows),
            Block,
            0,
            Ptr(logits),
            Ptr(targets),
            Ptr(rowLoss),
            Ptr(dlogits),
            (long)rows,
            (long)cols,
            ignoreIndex,
            (float)smoothing,
            counted != null ? Ptr(counted) : 0UL
        );
    }

    public void Extreme(Tensor x, int rows, int n, Tensor? values, Tensor? indices, bool max)
    {
        Float32(max ? "max" : "min", x);
        if (values != null)
            Float32(max ? "max" : "min", values);
        if (rows == 0)
            return;
        context.Launch(
            Kernel("reduce.cu", "extreme_rows_f32"),
            Rows(rows),
            Block,
            0,
            Ptr(x),
            values != null ? Ptr(values) : 0UL,
            indices != null ? Ptr(indices) : 0UL,
            (long)rows,
            (long)n,
            max ? 1 : 0
        );
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
        Float32("layer_norm", x, y, mean, rstd);
        if (rows == 0)
            return;
        context.Launch(
            Kernel("layernorm.cu", "layernorm_f32"),
            Rows(rows),
            Block,
            0,
            Ptr(x),
            weight != null ? Ptr(weight) : 0UL,
            bias != null ? Ptr(bias) : 0UL,
            Ptr(y),
            Ptr(mean),
            Ptr(rstd),
            (long)rows,
            (long)n,
            (float)eps
        );
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
        Float32("layer_norm backward", x, dy, dx);
        if (rows == 0 || n == 0)
        {
            if (dweight != null)
                Fill(dweight, 0);
            if (dbias != null)
                Fill(dbias, 0);
            return;
        }
        context.Launch(
            Kernel("layernorm.cu", "layernorm_backward_f32"),
            Rows(rows),
            Block,
            0,
            Ptr(x),
            weight != null ? Ptr(weight) : 0UL,
            Ptr(dy),
            Ptr(mean),
            Ptr(rstd),
            Ptr(dx),
            (long)rows,
            (long)n
        );
        if (dweight == null && dbias == null)
            return;
        // Chunks of 64 rows: enough (chunk, column) threads to fill the GPU, and a short second pass.
        const int chunk = 64;
        int chunks = (rows + chunk - 1) / chunk;
        using var pw = BackendTensors.Empty([chunks, n], DType.Float32, x.Device);
        using var pb = BackendTensors.Empty([chunks, n], DType.Float32, x.Device);
        context.Launch(
            Kernel("layernorm.cu", "layernorm_param_partial_f32"),
            Grid((long)chunks * n),
            Block,
            0,
            Ptr(x),
            Ptr(dy),
            Ptr(mean),
            Ptr(rstd),
            Ptr(pw),
            Ptr(pb),
            (long)rows,
            (long)n,
            (long)chunk
        );
        if (dweight != null)
            context.Launch(
                Kernel("reduce.cu", "sum_cols_f32"),
                Grid(n),
                Block,
                0,
                Ptr(pw),
                Ptr(dweight),
                (long)chunks,
                (long)n,
                1f
            );
        if (dbias != null)
            context.Launch(
                Kernel("reduce.cu", "sum_cols_f32"),
                Grid(n),
                Block,
                0,
                Ptr(pb),
                Ptr(dbias),
                (long)chunks,
                (long)n,
                1f
            );
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
        Float32("batch_norm", x, y, mean, rstd);
        if (x.NumEl == 0)
            return;
        if (batchStats)
            context.Launch(
                Kernel("batchnorm.cu", "batchnorm_stats_f32"),
                Rows(c),
                512,
                0,
                Ptr(x),
                Ptr(mean),
                Ptr(rstd),
                (long)n,
                (long)c,
                (long)l,
                (float)eps
            );
        context.Launch(
            Kernel("batchnorm.cu", "batchnorm_apply_f32"),
            Grid(x.NumEl),
            Block,
            0,
            Ptr(x),
            Ptr(y),
            weight != null ? Ptr(weight) : 0UL,
            bias != null ? Ptr(bias) : 0UL,
            Ptr(mean),
            Ptr(rstd),
            (long)x.NumEl,
            (long)c,
            (long)l
        );
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
        Float32("batch_norm backward", x, g, mean, rstd);
        // sums = [Σg per channel, Σg·x̂ per channel]: db and dw as they are, and what dx needs.
        using var sums = BackendTensors.Empty([2 * c], DType.Float32, x.Device);
        if (x.NumEl == 0)
            Fill(sums, 0);
        else
            context.Launch(
                Kernel("batchnorm.cu", "batchnorm_backward_reduce_f32"),
                Rows(c),
                512,
                0,
                Ptr(x),
                Ptr(g),
                Ptr(mean),
                Ptr(rstd),
                Ptr(sums),
                (long)n,
                (long)c,
                (long)l
            );
        if (dbias != null && c > 0)
            context.CopyDeviceToDevice(Ptr(dbias), Ptr(sums), 4L * c);
        if (dweight != null && c > 0)
            context.CopyDeviceToDevice(Ptr(dweight), Ptr(sums) + 4UL * (ulong)c, 4L * c);
        if (dx == null || x.NumEl == 0)
            return;
        context.Launch(
            Kernel("batchnorm.cu", "batchnorm_backward_apply_f32"),
            Grid(x.NumEl),
            Block,
            0,
            Ptr(x),
            Ptr(g),
            Ptr(dx),
            weight != null ? Ptr(weight) : 0UL,
            Ptr(mean),
            Ptr(rstd),
            Ptr(sums),
            (long)x.NumEl,
            (long)c,
            (long)l,
            (float)((double)n * l),
            batchStats ? 1 : 0
        );
    }
}
