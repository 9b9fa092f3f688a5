using HpcEngine.Autograd;
using HpcEngine.Backends.Cpu;

namespace HpcEngine;

public static partial class Ops
{
    /// <summary>C (+)= A·B for 2-D views of any strides (no copies: the GEMM packs through strides).</summary>
    internal static unsafe void Gemm2D(Tensor a, Tensor b, Tensor c, bool accumulate)
    {
        int m = a.Shape[0], k = a.Shape[1], n = b.Shape[1];
        switch (c.DType)
        {
            case DType.Float32:
                Sgemm.Run(m, n, k, a.Ptr<float>(), a.Strides[0], a.Strides[1], b.Ptr<float>(), b.Strides[0], b.Strides[1], c.Ptr<float>(), c.Strides[0], accumulate);
                break;
            case DType.Float64:
                Dgemm.Run(m, n, k, a.Ptr<double>(), a.Strides[0], a.Strides[1], b.Ptr<double>(), b.Strides[0], b.Strides[1], c.Ptr<double>(), c.Strides[0], accumulate);
                break;
            default:
                throw Unsupported("matmul", c.DType);
        }
    }

    /// <summary>Matrix product with PyTorch's rules: 1-D operands are promoted (and the added dim removed), leading
    /// batch dims broadcast. float32 and float64 (bf16/fp16 compute in float32).</summary>
    public static Tensor MatMul(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        SameDevice("matmul", a, b);
        if (a.Rank == 0 || b.Rank == 0)
            throw ShapeMismatchException.For("matmul", "both operands need at least one dimension", a, b);
        if (a.DType != b.DType)
            throw new DTypeMismatchException($"matmul: operands have different dtypes ({a.DType.TorchName()} and {b.DType.TorchName()}); convert one with To()");
        if (!a.DType.IsFloating()) throw Unsupported("matmul", a.DType, "a floating dtype");
        if (a.Rank == 1 && b.Rank == 1)
        {
            if (a.Shape[0] != b.Shape[0]) throw ShapeMismatchException.For("matmul", "1-D operands must have the same length", a, b);
            using var a2 = Unsqueeze(a, 0);
            using var b2 = Unsqueeze(b, 1);
            using var r2 = MatMul(a2, b2);
            return Reshape(r2, []);
        }
        if (a.Rank == 1)
        {
            using var a2 = Unsqueeze(a, 0);
            using var r = MatMul(a2, b);
            return Squeeze(r, -2);
        }
        if (b.Rank == 1)
        {
            using var b2 = Unsqueeze(b, 1);
            using var r = MatMul(a, b2);
            return Squeeze(r, -1);
        }
        int m = a.Shape[^2], k = a.Shape[^1], k2 = b.Shape[^2], n = b.Shape[^1];
        if (k != k2)
            throw ShapeMismatchException.For("matmul", $"the inner dimensions must agree (a's last {k} vs b's second-to-last {k2})", a, b);
        var batch = Shapes.Broadcast("matmul (batch dims)", a.Shape[..^2], b.Shape[..^2]);
        var compute = a.DType.ComputeType();
        using var ac = ToDType(a, compute, false);
        using var bc = ToDType(b, compute, false);
        var outShape = batch.Append(m).Append(n).ToArray();
        var r3 = Tensor.Empty(outShape, compute);
        var aBatch = Shapes.BroadcastStrides(a.Shape[..^2], a.Strides[..^2], batch);
        var bBatch = Shapes.BroadcastStrides(b.Shape[..^2], b.Strides[..^2], batch);
        int nb = Shapes.NumEl(batch);
        var idx = new int[batch.Length];
        for (int bi = 0; bi < nb; bi++)
        {
            int oa = ac.Offset, ob = bc.Offset;
            for (int d = 0; d < batch.Length; d++) { oa += idx[d] * aBatch[d]; ob += idx[d] * bBatch[d]; }
            using var a2 = ac.View([m, k], [ac.Strides[^2], ac.Strides[^1]], oa);
            using var b2 = bc.View([k, n], [bc.Strides[^2], bc.Strides[^1]], ob);
            using var c2 = r3.View([m, n], [n, 1], bi * m * n);
            Gemm2D(a2, b2, c2, accumulate: false);
            for (int d = batch.Length - 1; d >= 0; d--) { if (++idx[d] < batch[d]) break; idx[d] = 0; }
        }
        if (compute != a.DType) r3 = r3.Replace(ToDType(r3, a.DType, false));
        if (!Recorder.Needs(a, b)) return r3;
        int[] sa = a.ShapeArray, sb = b.ShapeArray;
        bool ga = a.NeedsGrad, gb = b.NeedsGrad;
        return Recorder.Record(r3, "matmul", [a, b], [a, b], (g, s) =>
        {
            Tensor? da = null, db = null;
            if (ga)
            {
                using var bt = Transpose(s[1], -1, -2);
                da = SumToOwned(MatMul(g, bt), sa);
            }
            if (gb)
            {
                using var at = Transpose(s[0], -1, -2);
                db = SumToOwned(MatMul(at, g), sb);
            }
            return [da, db];
        });
    }

    /// <summary>y = x·Wᵀ + b, the affine map of nn.Linear: x [..., in], W [out, in], b [out].</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Rank != 2) throw ShapeMismatchException.For("linear", "the weight must be 2-D [out_features, in_features]", x, weight);
        if (x.Rank == 0 || x.Shape[^1] != weight.Shape[1])
            throw ShapeMismatchException.For("linear", $"the input's last dim must equal in_features ({weight.Shape[1]})", x, weight);
        using var wt = Transpose(weight, 0, 1);
        if (bias == null) return MatMul(x, wt);
        if (bias.Rank != 1 || bias.Shape[0] != weight.Shape[0])
            throw ShapeMismatchException.For("linear", $"the bias must be 1-D of length out_features ({weight.Shape[0]})", weight, bias);
        using var y = MatMul(x, wt);
        return Add(y, bias);
    }
}
