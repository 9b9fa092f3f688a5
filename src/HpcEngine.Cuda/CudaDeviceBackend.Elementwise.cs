using System.Runtime.InteropServices;
using HpcEngine.Backends;
using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda;

/// <summary>Elementwise, unary and comparison primitives, clamp and Bernoulli draws (elementwise.cu, compare.cu,
/// random.cu).</summary>
internal sealed unsafe partial class CudaDeviceBackend
{
    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor r)
    {
        Float32(op.ToString().ToLowerInvariant(), a, b, r);
        if (r.NumEl == 0)
            return;
        string name = op switch
        {
            BinaryOp.Add => "add",
            BinaryOp.Sub => "sub",
            BinaryOp.Mul => "mul",
            BinaryOp.Div => "div",
            BinaryOp.Maximum => "maximum",
            BinaryOp.Minimum => "minimum",
            BinaryOp.Pow => "pow",
            BinaryOp.Atan2 => "atan2",
            BinaryOp.Fmod => "fmod",
            BinaryOp.Remainder => "remainder",
            BinaryOp.CopySign => "copysign",
            _ => throw NoKernel(op.ToString().ToLowerInvariant()),
        };
        bool dense =
            a.IsContiguous
            && b.IsContiguous
            && a.NumEl == r.NumEl
            && b.NumEl == r.NumEl
            && NoZeroStrides(a)
            && NoZeroStrides(b);
        if (dense)
        {
            context.Launch(
                Kernel("elementwise.cu", name + "_f32"),
                Grid(r.NumEl),
                Block,
                0,
                Ptr(a),
                Ptr(b),
                Ptr(r),
                (long)r.NumEl
            );
            return;
        }
        context.Launch(
            Kernel("elementwise.cu", name + "_broadcast_f32"),
            Grid(r.NumEl),
            Block,
            0,
            Ptr(a),
            Ptr(b),
            Ptr(r),
            (long)r.NumEl,
            Layout(name, r, a, b)
        );
    }

    /// <summary>The strided-copy kernel suffix for t's element size ("_b32" ...): copies move bits, any
    /// dtype.</summary>
    private static string Bits(Tensor t) => "_b" + t.DType.SizeOf() * 8;

    private static bool NoZeroStrides(Tensor t)
    {
        for (int d = 0; d < t.Rank; d++)
            if (t.Strides[d] == 0 && t.Shape[d] > 1)
                return false;
        return true;
    }

    private Tensor Materialise(Tensor t)
    {
        var c = BackendTensors.Empty(t.Shape, t.DType, t.Device);
        context.Launch(
            Kernel("elementwise.cu", "strided_copy" + Bits(t)),
            Grid(c.NumEl),
            Block,
            0,
            Ptr(t),
            Ptr(c),
            (long)c.NumEl,
            Layout("copy", c, t)
        );
        return c;
    }

    public void Unary(UnaryOp op, Tensor x, Tensor r, double alpha)
    {
        Float32(op.ToString().ToLowerInvariant(), x, r);
        if (r.NumEl == 0)
            return;
        long n = r.NumEl;
        switch (op)
        {
            case UnaryOp.Neg:
                context.Launch(Kernel("elementwise.cu", "affine_f32"), Grid(n), Block, 0, Ptr(x), Ptr(r), -1f, 0f, n);
                return;
            case UnaryOp.PowScalar:
                context.Launch(
                    Kernel("elementwise.cu", "pow_scalar_f32"),
                    Grid(n),
                    Block,
                    0,
                    Ptr(x),
                    Ptr(r),
                    (float)alpha,
                    n
                );
                return;
            case UnaryOp.LeakyRelu:
                context.Launch(
                    Kernel("elementwise.cu", "leaky_relu_f32"),
                    Grid(n),
                    Block,
                    0,
                    Ptr(x),
                    Ptr(r),
                    n,
                    (float)alpha
                );
                return;
        }
        string name = op switch
        {
            UnaryOp.Relu => "relu",
            UnaryOp.Sigmoid => "sigmoid",
            UnaryOp.Tanh => "tanh",
            UnaryOp.Exp => "exp",
            UnaryOp.Log => "log",
            UnaryOp.Sqrt => "sqrt",
            UnaryOp.Abs => "abs",
            UnaryOp.Silu => "silu",
            UnaryOp.GeluTanh => "gelu",
            UnaryOp.Gelu => "gelu_erf",
            UnaryOp.Log1p => "log1p",
            UnaryOp.Rsqrt => "rsqrt",
            UnaryOp.Sign => "sign",
            UnaryOp.Reciprocal => "reciprocal",
            _ when IsMathFunction(op) || IsRounding(op) => op.ToString().ToLowerInvariant(),
            _ => throw NoKernel(op.ToString().ToLowerInvariant()),
        };
        context.Launch(Kernel("elementwise.cu", name + "_f32"), Grid(n), Block, 0, Ptr(x), Ptr(r), n);
    }

    public void Clamp(Tensor x, Tensor r, double lo, double hi)
    {
        Float32("clamp", x, r);
        if (r.NumEl == 0)
            return;
        // ±inf bounds pass as ±inf floats: the comparisons are then never true.
        context.Launch(
            Kernel("elementwise.cu", "clamp_f32"),
            Grid(r.NumEl),
            Block,
            0,
            Ptr(x),
            Ptr(r),
            (long)r.NumEl,
            (float)lo,
            (float)hi
        );
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor g, Tensor dx, double alpha)
    {
        Float32(op.ToString().ToLowerInvariant() + " backward", x, y, g, dx);
        if (dx.NumEl == 0)
            return;
        long n = dx.NumEl;
        // Derivatives with no kernel of their own, composed from the elementwise ones.
        switch (op)
        {
            case UnaryOp.Exp: // dx = g·y
                context.Launch(Kernel("elementwise.cu", "mul_f32"), Grid(n), Block, 0, Ptr(g), Ptr(y), Ptr(dx), n);
                return;
            case UnaryOp.Log: // dx = g / x
                context.Launch(Kernel("elementwise.cu", "div_f32"), Grid(n), Block, 0, Ptr(g), Ptr(x), Ptr(dx), n);
                return;
            case UnaryOp.Sqrt: // dx = 0.5·g / y
                context.Launch(Kernel("elementwise.cu", "div_f32"), Grid(n), Block, 0, Ptr(g), Ptr(y), Ptr(dx), n);
                context.Launch(
                    Kernel("elementwise.cu", "affine_f32"),
                    Grid(n),
                    Block,
                    0,
                    Ptr(dx),
                    Ptr(dx),
                    0.5f,
                    0f,
                    n
                );
                return;
            case UnaryOp.PowScalar: // dx = g·p·x^(p−1)
            {
                using var t = BackendTensors.Empty(x.Shape, DType.Float32, x.Device);
                context.Launch(
                    Kernel("elementwise.cu", "pow_scalar_f32"),
                    Grid(n),
                    Block,
                    0,
                    Ptr(x),
                    Ptr(t),
                    (float)(alpha - 1),
                    n
                );
                context.Launch(Kernel("elementwise.cu", "mul_f32"), Grid(n), Block, 0, Ptr(g), Ptr(t), Ptr(dx), n);
                context.Launch(
                    Kernel("elementwise.cu", "affine_f32"),
                    Grid(n),
                    Block,
                    0,
                    Ptr(dx),
                    Ptr(dx),
                    (float)alpha,
                    0f,
                    n
                );
                return;
            }
        }
        switch (op)
        {
            case UnaryOp.LeakyRelu:
                context.Launch(
                    Kernel("elementwise.cu", "leaky_relu_backward_f32"),
                    Grid(n),
                    Block,
                    0,
                    Ptr(x),
                    Ptr(g),
                    Ptr(dx),
                    n,
                    (float)alpha
                );
                return;
            case UnaryOp.Sign or UnaryOp.Floor or UnaryOp.Ceil or UnaryOp.Round or UnaryOp.Trunc: // gradient 0 almost everywhere
                Fill(dx, 0);
                return;
        }
        (string Name, Tensor From) k = op switch
        {
            UnaryOp.Relu => ("relu_backward_f32", x),
            UnaryOp.GeluTanh => ("gelu_backward_f32", x),
            UnaryOp.Silu => ("silu_backward_f32", x),
            UnaryOp.Gelu => ("gelu_erf_backward_f32", x),
            UnaryOp.Abs => ("abs_backward_f32", x),
            UnaryOp.Log1p => ("log1p_backward_f32", x),
            UnaryOp.Rsqrt => ("rsqrt_backward_f32", y),
            UnaryOp.Reciprocal => ("reciprocal_backward_f32", y),
            UnaryOp.Sigmoid => ("sigmoid_backward_f32", y),
            UnaryOp.Tanh => ("tanh_backward_f32", y),
            UnaryOp.Neg => ("affine_f32", g),
            _ when IsMathFunction(op) => (op.ToString().ToLowerInvariant() + "_backward_f32", x),
            _ => throw NoKernel(op.ToString().ToLowerInvariant() + " backward"),
        };
        if (op == UnaryOp.Neg)
            context.Launch(Kernel("elementwise.cu", k.Name), Grid(n), Block, 0, Ptr(g), Ptr(dx), -1f, 0f, n);
        else
            context.Launch(Kernel("elementwise.cu", k.Name), Grid(n), Block, 0, Ptr(k.From), Ptr(g), Ptr(dx), n);
    }

    public void Compare(CompareOp op, Tensor a, Tensor b, Tensor r)
    {
        string suffix = a.DType switch
        {
            DType.Float32 => "f32",
            DType.Int64 => "i64",
            DType.Int32 => "i32",
            _ => throw new DTypeMismatchException(
                $"comparisons on cuda: float32, int64 or int32 (got {a.DType.TorchName()})"
            ),
        };
        if (r.NumEl == 0)
            return;
        context.Launch(
            Kernel("compare.cu", "compare_" + suffix),
            Grid(r.NumEl),
            Block,
            0,
            Ptr(a),
            Ptr(b),
            Ptr(r),
            (long)r.NumEl,
            (int)op,
            Layout("compare", r, a, b)
        );
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor r)
    {
        int size = r.DType.SizeOf();
        if (size is not (4 or 8))
            throw new DTypeMismatchException($"where on cuda: 4- or 8-byte dtypes (got {r.DType.TorchName()})");
        if (r.NumEl == 0)
            return;
        if (r.Rank > 8)
            throw new ShapeMismatchException($"where on cuda: at most 8 dimensions (got {r.Rank})");
        var s = new Broadcast3 { Ndim = Math.Max(r.Rank, 1) };
        s.Shape[0] = 1;
        Tensor[] operands = [condition, a, b];
        for (int d = 0; d < r.Rank; d++)
        {
            s.Shape[d] = r.Shape[d];
            for (int k = 0; k < 3; k++)
                s.Stride[k * 8 + d] = operands[k].Strides[d];
        }
        context.Launch(
            Kernel("compare.cu", size == 4 ? "where_32" : "where_64"),
            Grid(r.NumEl),
            Block,
            0,
            Ptr(condition),
            Ptr(a),
            Ptr(b),
            Ptr(r),
            (long)r.NumEl,
            s
        );
    }

    public void Bernoulli(Tensor r, Generator generator, ulong seed, ulong start, double p, double value)
    {
        Float32("bernoulli", r);
        if (r.NumEl == 0)
            return;
        // uniform = k / 2^24 < p  ⇔  k < ceil(p · 2^24): exact, as the CPU's double comparison.
        uint threshold = (uint)Math.Ceiling(p * 16777216.0);
        if (context.Capture is { } capture)
        {
            // In a graph the counter is start + a replay offset in device memory, which each replay sets.
            var offset = capture.OffsetFor(generator, start, r.Device);
            context.Launch(
                Kernel("random.cu", "bernoulli_graph_f32"),
                Grid(r.NumEl),
                Block,
                0,
                Ptr(r),
                (long)r.NumEl,
                seed,
                Ptr(offset),
                start,
                threshold,
                (float)value
            );
            return;
        }
        context.Launch(
            Kernel("random.cu", "bernoulli_f32"),
            Grid(r.NumEl),
            Block,
            0,
            Ptr(r),
            (long)r.NumEl,
            seed,
            start,
            threshold,
            (float)value
        );
    }

    /// <summary>The math functions whose kernels are named after the op: forward "name_f32", backward
    /// "name_backward_f32" (from the input).</summary>
    private static bool IsMathFunction(UnaryOp op) =>
        op
            is UnaryOp.Sin
                or UnaryOp.Cos
                or UnaryOp.Tan
                or UnaryOp.Asin
                or UnaryOp.Acos
                or UnaryOp.Atan
                or UnaryOp.Sinh
                or UnaryOp.Cosh
                or UnaryOp.Erf
                or UnaryOp.Erfinv
                or UnaryOp.Expm1
                or UnaryOp.Log2
                or UnaryOp.Log10;

    /// <summary>The rounding functions: a forward kernel each, gradient 0.</summary>
    private static bool IsRounding(UnaryOp op) => op is UnaryOp.Floor or UnaryOp.Ceil or UnaryOp.Round or UnaryOp.Trunc;
}
