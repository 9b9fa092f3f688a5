using System.Runtime.InteropServices;
using HpcEngine.Backends;
using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda;

/// <summary>GEMMs through cuBLAS: row-major strided views mapped onto column-major GEMMs, batched and bf16
/// (autocast).</summary>
internal sealed unsafe partial class CudaDeviceBackend
{
    /// <summary>A 2-D view as cuBLAS sees it: (transposed?, leading dimension), or null when it needs a copy.</summary>
    private static (bool Trans, int Ld)? AsColumnMajorOperand(Tensor t)
    {
        int rows = t.Shape[0],
            cols = t.Shape[1];
        long s0 = t.Strides[0],
            s1 = t.Strides[1];
        // Row-major (stride[1] = 1): column-major it is the transpose, read with op N.
        if ((cols == 1 || s1 == 1) && (rows == 1 || s0 >= Math.Max(cols, 1)))
            return (false, rows == 1 ? Math.Max(cols, 1) : (int)s0);
        // Column-major (a transposed view, stride[0] = 1): read with op T.
        if ((rows == 1 || s0 == 1) && (cols == 1 || s1 >= Math.Max(rows, 1)))
            return (true, cols == 1 ? Math.Max(rows, 1) : (int)s1);
        return null;
    }

    public void Gemm(Tensor a, Tensor b, Tensor c, bool accumulate, bool bf16Inputs = false)
    {
        Float32("matmul", a, b, c);
        int m = a.Shape[0],
            k = a.Shape[1],
            n = b.Shape[1];
        if (m == 0 || n == 0)
            return;
        if (k == 0)
        {
            if (!accumulate)
                Fill(c, 0);
            return;
        }
        if (c.Strides[1] != 1 && n > 1)
            throw new InvalidOperationException("internal: gemm on cuda writes row-major output");
        using var ac = AsColumnMajorOperand(a) == null ? Materialise(a) : BackendTensors.Alias(a);
        using var bc = AsColumnMajorOperand(b) == null ? Materialise(b) : BackendTensors.Alias(b);
        var (ta, lda) = AsColumnMajorOperand(ac)!.Value;
        var (tb, ldb) = AsColumnMajorOperand(bc)!.Value;
        int ldc = m == 1 ? Math.Max(n, 1) : c.Strides[0];
        if (bf16Inputs)
        {
            // Autocast: contiguous bf16 copies of the operands (row-major, op N), then the tensor-core GEMM.
            using var a16 = ToBf16(ac);
            using var b16 = ToBf16(bc);
            context.GemmBf16(
                false,
                false,
                n,
                m,
                k,
                Ptr(b16),
                Math.Max(n, 1),
                Ptr(a16),
                Math.Max(k, 1),
                accumulate ? 1f : 0f,
                Ptr(c),
                ldc
            );
            return;
        }
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: B first, then A, no copies.
        context.GemmF32(
            tb,
            ta,
            n,
            m,
            k,
            Ptr(bc),
            ldb,
            Ptr(ac),
            lda,
            accumulate ? 1f : 0f,
            Ptr(c),
            ldc,
            CudaBackend.AllowTf32
        );
    }

    public void GemmBatched(Tensor a, Tensor b, Tensor c, bool bf16Inputs = false)
    {
        Float32("matmul", a, b, c);
        int batch = a.Shape[0],
            m = a.Shape[1],
            k = a.Shape[2],
            n = b.Shape[2];
        if (batch == 0 || m == 0 || n == 0)
            return;
        if (k == 0)
        {
            Fill(c, 0);
            return;
        }
        // Each operand as cuBLAS reads it: its matrices row- or column-major with one batch stride; else (or for bf16)
        // a contiguous copy. Row-major C_i = A_i·B_i is column-major C_iᵀ = B_iᵀ·A_iᵀ: B first, as in Gemm.
        using var ac = bf16Inputs ? Converted(a, DType.BFloat16) : BatchOperand(a);
        using var bc = bf16Inputs ? Converted(b, DType.BFloat16) : BatchOperand(b);
        using var a0 = Slice0(ac);
        using var b0 = Slice0(bc);
        var (ta, lda) = AsColumnMajorOperand(a0)!.Value;
        var (tb, ldb) = AsColumnMajorOperand(b0)!.Value;
        context.GemmStridedBatched(
            tb,
            ta,
            n,
            m,
            k,
            Ptr(bc),
            ldb,
            bc.Strides[0],
            Ptr(ac),
            lda,
            ac.Strides[0],
            Ptr(c),
            n,
            (long)m * n,
            batch,
            bf16Inputs,
            CudaBackend.AllowTf32
        );
    }

    /// <summary>The first matrix of a [batch, rows, cols] view (a view, not a copy; disposal is the
    /// caller's).</summary>
    private static Tensor Slice0(Tensor t) =>
        BackendTensors.View(t, [t.Shape[1], t.Shape[2]], [t.Strides[1], t.Strides[2]], BackendTensors.Offset(t));

    private Tensor BatchOperand(Tensor t)
    {
        using var first = Slice0(t);
        return AsColumnMajorOperand(first) != null ? BackendTensors.Alias(t) : Converted(t, t.DType);
    }

    /// <summary>A contiguous copy of <paramref name="t"/> in <paramref name="dtype"/>.</summary>
    private Tensor Converted(Tensor t, DType dtype)
    {
        var r = BackendTensors.Empty(t.ShapeArray, dtype, t.Device);
        Copy(t, r);
        return r;
    }

    /// <summary>A contiguous bf16 copy of a float32 view (round to nearest even, as the CPU).</summary>
    private Tensor ToBf16(Tensor t)
    {
        var r = BackendTensors.Empty(t.Shape, DType.BFloat16, t.Device);
        Copy(t, r);
        return r;
    }
}
