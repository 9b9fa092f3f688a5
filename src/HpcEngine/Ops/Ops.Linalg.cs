using HpcEngine.Autograd;

namespace HpcEngine;

public static partial class Ops
{
    /// <summary>C (+)= A·B for 2-D views of any strides (no copies: the GEMM packs through strides).</summary>
    internal static void Gemm2D(Tensor a, Tensor b, Tensor c, bool accumulate) =>
        c.Backend.Gemm(a, b, c, accumulate, bf16Inputs: Autocast.IsBf16 && c.DType == DType.Float32);

    /// <summary>A float32 copy of <paramref name="x"/> whose values are rounded to bfloat16 (nearest, ties to
    /// even).</summary>
    internal static Tensor RoundToBf16(Tensor x)
    {
        using var b = ToDType(x, DType.BFloat16, false);
        return ToDType(b, DType.Float32, false);
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
            throw new DTypeMismatchException(
                $"matmul: operands have different dtypes ({a.DType.TorchName()} and {b.DType.TorchName()}); convert "
                    + $"one with To()"
            );
        if (!a.DType.IsFloating())
            throw Unsupported("matmul", a.DType, "a floating dtype");
        if (a.Rank == 1 && b.Rank == 1)
        {
            if (a.Shape[0] != b.Shape[0])
                throw ShapeMismatchException.For("matmul", "1-D operands must have the same length", a, b);
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
        int m = a.Shape[^2],
            k = a.Shape[^1],
            k2 = b.Shape[^2],
            n = b.Shape[^1];
        if (k != k2)
            throw ShapeMismatchException.For(
                "matmul",
                $"the inner dimensions must agree (a's last {k} vs b's second-to-last {k2})",
                a,
                b
            );
        var batch = Shapes.Broadcast("matmul (batch dims)", a.Shape[..^2], b.Shape[..^2]);
        var compute = a.DType.ComputeType();
        using var ac = ToDType(a, compute, false);
        using var bc = ToDType(b, compute, false);
        var outShape = batch.Append(m).Append(n).ToArray();
        var r3 = Tensor.Empty(outShape, compute, a.Device);
        var aBatch = Shapes.BroadcastStrides(a.Shape[..^2], a.Strides[..^2], batch);
        var bBatch = Shapes.BroadcastStrides(b.Shape[..^2], b.Strides[..^2], batch);
        int nb = Shapes.NumEl(batch);
        if (nb == 1)
        {
            using var a2 = ac.View([m, k], [ac.Strides[^2], ac.Strides[^1]], ac.Offset);
            using var b2 = bc.View([k, n], [bc.Strides[^2], bc.Strides[^1]], bc.Offset);
            using var c2 = r3.View([m, n], [n, 1], r3.Offset);
            Gemm2D(a2, b2, c2, accumulate: false);
        }
        else if (nb > 1)
        {
            // One strided-batched GEMM (on a GPU one launch instead of one per matrix).
            using var a3 = BatchOf(ac, batch, aBatch, m, k);
            using var b3 = BatchOf(bc, batch, bBatch, k, n);
            using var c3 = r3.View([nb, m, n], [m * n, n, 1], r3.Offset);
            r3.Backend.GemmBatched(a3, b3, c3, Autocast.IsBf16 && r3.DType == DType.Float32);
        }
        if (compute != a.DType)
            r3 = r3.Replace(ToDType(r3, a.DType, false));
        if (!Recorder.Needs(a, b))
            return r3;
        int[] sa = a.ShapeArray,
            sb = b.ShapeArray;
        bool ga = a.NeedsGrad,
            gb = b.NeedsGrad;
        return Recorder.Record(r3, "matmul", [a, b], [a, b], (g, s) =>
        {
            Tensor? da = null,
                db = null;
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

    /// <summary>t's matrices over the broadcast batch dims as one [nb, rows, cols] view with a single batch stride
    /// (0 when broadcast over all of them) — or, when the batch dims do not flatten to one stride (a permuted
    /// attention head, a partial broadcast), a contiguous copy.</summary>
    private static Tensor BatchOf(Tensor t, int[] batch, int[] batchStrides, int rows, int cols)
    {
        int nb = Shapes.NumEl(batch);
        var dims = Enumerable.Range(0, batch.Length).Where(d => batch[d] > 1).ToArray();
        bool uniform =
            dims.All(d => batchStrides[d] == 0)
            || dims.Zip(dims.Skip(1)).All(p => batchStrides[p.First] == batchStrides[p.Second] * batch[p.Second]);
        if (uniform)
        {
            int stride = dims.Length == 0 ? 0 : batchStrides[dims[^1]];
            return t.View([nb, rows, cols], [stride, t.Strides[^2], t.Strides[^1]], t.Offset);
        }
        var shape = batch.Append(rows).Append(cols).ToArray();
        var strides = batchStrides.Append(t.Strides[^2]).Append(t.Strides[^1]).ToArray();
        using var expanded = t.View(shape, strides, t.Offset);
        using var copy = ContiguousNoGrad(expanded);
        return copy.View([nb, rows, cols], [rows * cols, cols, 1], copy.Offset);
    }

    /// <summary>y = x·Wᵀ + b, the affine map of nn.Linear: x [..., in], W [out, in], b [out]. One fused op: its
    /// backward writes dW = gᵀ·x straight into a contiguous [out, in] gradient (through a transposed view the
    /// gradient would arrive transposed and need a copy), dx = g·W, db = Σ g over the leading dims.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.Rank != 2)
            throw ShapeMismatchException.For("linear", "the weight must be 2-D [out_features, in_features]", x, weight);
        if (x.Rank == 0 || x.Shape[^1] != weight.Shape[1])
            throw ShapeMismatchException.For(
                "linear",
                $"the input's last dim must equal in_features ({weight.Shape[1]})",
                x,
                weight
            );
        if (bias != null && (bias.Rank != 1 || bias.Shape[0] != weight.Shape[0]))
            throw ShapeMismatchException.For(
                "linear",
                $"the bias must be 1-D of length out_features ({weight.Shape[0]})",
                weight,
                bias
            );
        if (x.DType != weight.DType || (bias != null && bias.DType != weight.DType))
            throw new DTypeMismatchException(
                $"linear: input, weight and bias must share a dtype (got {x.DType.TorchName()}, {weight.DType.TorchName()}{(bias != null ? ", " + bias.DType.TorchName() : "")})"
            );
        if (x.DType.ComputeType() != x.DType)
        {
            // Reduced precision: the composite form computes in float32 and rounds back.
            using var wt = Transpose(weight, 0, 1);
            using var y0 = MatMul(x, wt);
            return bias == null ? Identity(y0) : Add(y0, bias);
        }
        int outF = weight.Shape[0],
            inF = weight.Shape[1];
        using var x2 = ReshapeNoGrad(x, [-1, inF]);
        int rows = x2.Shape[0];
        SameDevice("linear", x, weight);
        if (bias != null)
            SameDevice("linear", x, bias);
        var y = Tensor.Empty([rows, outF], x.DType, x.Device);
        using (var wT = weight.View([inF, outF], [weight.Strides[1], weight.Strides[0]], weight.Offset))
            Gemm2D(x2, wT, y, accumulate: false);
        if (bias != null)
            AddInto(y, bias);
        var outShape = x.ShapeArray;
        outShape[^1] = outF;
        var r = y.Replace(ReshapeNoGrad(y, outShape));
        var inputs = bias != null ? new[] { x, weight, bias } : new[] { x, weight };
        if (!Recorder.Needs(inputs))
            return r;
        bool gx = x.NeedsGrad,
            gw = weight.NeedsGrad,
            gb = bias?.NeedsGrad ?? false;
        var xShape = x.ShapeArray;
        return Recorder.Record(r, "linear", inputs, [x2, weight], (g, s) =>
        {
            using var g2 = ReshapeNoGrad(g, [-1, outF]).ContiguousOwned();
            Tensor? dx = null,
                dw = null,
                db = null;
            if (gx)
            {
                var dx2 = Tensor.Empty([rows, inF], g.DType, g.Device);
                Gemm2D(g2, s[1], dx2, accumulate: false);
                dx = dx2.Replace(ReshapeNoGrad(dx2, xShape));
            }
            if (gw)
            {
                dw = Tensor.Empty([outF, inF], g.DType, g.Device);
                using var gT = g2.View([outF, rows], [1, outF], g2.Offset);
                Gemm2D(gT, s[0], dw, accumulate: false);
            }
            if (gb)
                db = Sum(g2, [0]);
            return bias != null ? [dx, dw, db] : [dx, dw];
        });
    }
}
