using System.Runtime.InteropServices;
using HpcEngine.Backends;
using HpcEngine.Backends.Cpu;
using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda;

/// <summary>Makes <c>cuda:N</c> tensors available: after <see cref="Register"/>, <c>x.To(Device.Cuda())</c> moves a
/// tensor to the GPU and the ops with a device path (elementwise and unary ops, casts, matmul/linear through cuBLAS,
/// sum/mean, softmax/log-softmax and their backward) run there with the engine's kernels, enqueued on the device's
/// stream; data synchronises only when it leaves the device. Memory comes from the context's caching allocator.</summary>
public static class CudaBackend
{
    private static CudaContext? _context;

    /// <summary>Opens cuda:<paramref name="device"/> (once) and registers it as the engine's CUDA device. Throws
    /// <see cref="CudaException"/> or <see cref="CudaLibraryNotFoundException"/> saying what is missing.</summary>
    public static CudaContext Register(int device = 0)
    {
        lock (typeof(CudaBackend))
        {
            if (_context == null)
            {
                _context = CudaContext.Open(device);
                DeviceBackends.Register(new CudaDeviceBackend(_context, DeviceType.Cuda));
            }
            return _context;
        }
    }

    /// <summary>fp32 matmuls on TF32 tensor cores (about 10 bits of mantissa in the products; off by default).</summary>
    public static bool AllowTf32 { get; set; }
}

/// <summary>The <see cref="IDeviceBackend"/> of one CUDA device: every primitive is a kernel launch (or a cuBLAS call)
/// on the context's stream. float32 throughout, plus casts to and from bf16/fp16; other dtypes are refused by name.</summary>
internal sealed unsafe class CudaDeviceBackend(ICudaStream context, DeviceType type) : IDeviceBackend
{
    private const uint Block = 256;

    public DeviceType Type => type;

    public bool Capturing => context.Capturing;

    public IDeviceGraph CaptureGraph(Action step, int warmup) => CudaGraph.Capture(context, step, warmup);

    /// <summary>Refuses a host transfer while the stream is being captured: the copy would not run now (only on replay,
    /// from a host buffer long gone) and the synchronisation would invalidate the capture.</summary>
    private void NotWhileCapturing(string what)
    {
        if (context.Capturing)
            throw new InvalidOperationException($"{what} during a CUDA graph capture: reading or writing device memory from the host (.Item(), ToArray(), .To(Device.Cpu), moving a CPU tensor in, a host-side check) cannot be captured; keep the inputs on the GPU in tensors allocated before the capture and copy into them before each Replay()");
    }

    /// <summary>Memory from the caching allocator, returned to it (not to the driver) on dispose.</summary>
    private sealed class CudaMemory(Memory.CachingAllocator allocator, Memory.DeviceBlock block, long bytes) : HpcEngine.Backends.IDeviceMemory
    {
        private int _freed;
        public ulong Pointer => block.Pointer;
        public long Bytes => bytes;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _freed, 1) == 0) allocator.Free(block);
        }
    }

    /// <summary>Shape and strides of up to 8 dims, laid out as native/kernels/elementwise.cu's struct Broadcast.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Broadcast
    {
        public int Ndim;
        public fixed long Shape[8];
        public fixed long AStride[8];
        public fixed long BStride[8];
    }

    /// <summary>native/include/hpc/strided.cuh's struct Broadcast3 (where: condition, a, b).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Broadcast3
    {
        public int Ndim;
        public fixed long Shape[8];
        public fixed long Stride[24];
    }

    /// <summary>native/kernels/index.cu's struct IndexShape.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct IndexShape
    {
        public int Ndim, Dim;
        public fixed long Shape[8];
        public fixed long XStride[8];
        public fixed long IStride[8];
        public fixed long OStride[8];
    }

    private static Broadcast Layout(string op, Tensor r, Tensor a, Tensor? b = null)
    {
        if (r.Rank > 8) throw new ShapeMismatchException($"{op} on cuda: at most 8 dimensions (got {r.Rank})");
        var s = new Broadcast { Ndim = Math.Max(r.Rank, 1) };
        if (r.Rank == 0) { s.Shape[0] = 1; return s; }
        for (int d = 0; d < r.Rank; d++)
        {
            s.Shape[d] = r.Shape[d];
            s.AStride[d] = a.Strides[d];
            s.BStride[d] = b?.Strides[d] ?? 0;
        }
        return s;
    }

    private IntPtr Kernel(string file, string name) => context.Function(file, name);

    private static uint Grid(long n) => (uint)Math.Clamp((n + Block - 1) / Block, 1, 65535);

    private static uint Rows(long rows) => (uint)Math.Clamp(rows, 1, 65535);

    internal static ulong Ptr(Tensor t) => ((CudaMemory)t.Storage.DeviceMemory).Pointer + (ulong)((long)t.Offset * t.DType.SizeOf());

    private static void Float32(string op, params Tensor[] ts)
    {
        foreach (var t in ts)
            if (t.DType != DType.Float32) throw new DTypeMismatchException($"{op} on cuda: only float32 has kernels so far (got {t.DType.TorchName()}); convert with .To(DType.Float32)");
    }

    private static DeviceMismatchException NoKernel(string what) =>
        new($"{what} has no cuda kernel yet; move the tensor with .To(Device.Cpu) for this op");

    public HpcEngine.Backends.IDeviceMemory Allocate(Device device, long bytes)
    {
        if (device.Index != context.DeviceIndex)
            throw new DeviceMismatchException($"cuda:{device.Index} is not open: the CUDA backend was registered for cuda:{context.DeviceIndex}");
        var block = context.Memory.Allocate(Math.Max(bytes, 1), context.Stream);
        return new CudaMemory(context.Memory, block, bytes);
    }

    public void CopyFromHost(HpcEngine.Backends.IDeviceMemory dst, long dstOffsetBytes, ReadOnlySpan<byte> src)
    {
        if (src.Length == 0) return;
        NotWhileCapturing("a host-to-device copy");
        context.CopyHostToDevice(((CudaMemory)dst).Pointer + (ulong)dstOffsetBytes, src);
    }

    public void CopyToHost(Span<byte> dst, HpcEngine.Backends.IDeviceMemory src, long srcOffsetBytes)
    {
        if (dst.Length == 0) return;
        NotWhileCapturing("a device-to-host copy");
        context.CopyDeviceToHost(dst, ((CudaMemory)src).Pointer + (ulong)srcOffsetBytes);
    }

    public void Fill(Tensor r, double value)
    {
        if (r.NumEl == 0) return;
        if (value == 0 && r.IsContiguous)
        {
            context.Memset(Ptr(r), (long)r.NumEl * r.DType.SizeOf()); // zero bits are zero in every dtype
            return;
        }
        if (!r.IsContiguous) throw NoKernel("a fill of a non-contiguous view");
        // The value's bits in r's dtype (the CPU's conversion rules), passed by value to the kernel.
        ulong pattern = 0;
        CastKernels.Write((byte*)&pattern, r.DType, 0, value);
        context.Launch(Kernel("elementwise.cu", "fill" + Bits(r)), Grid(r.NumEl), Block, 0, Ptr(r), pattern, (long)r.NumEl);
    }

    public void Copy(Tensor src, Tensor dst)
    {
        if (dst.NumEl == 0) return;
        if (!dst.IsContiguous)
        {
            // Into a strided view: same dtype only (the casts write contiguous outputs).
            if (src.DType != dst.DType) throw NoKernel($"a cast into a non-contiguous view ({src.DType.TorchName()} → {dst.DType.TorchName()})");
            context.Launch(Kernel("elementwise.cu", "strided_copy_any" + Bits(src)), Grid(dst.NumEl), Block, 0, Ptr(src), Ptr(dst), (long)dst.NumEl, Layout("copy", dst, src, dst));
            return;
        }
        if (src.DType == dst.DType)
        {
            if (src.IsContiguous)
            {
                context.CopyDeviceToDevice(Ptr(dst), Ptr(src), (long)dst.NumEl * dst.DType.SizeOf());
                return;
            }
            context.Launch(Kernel("elementwise.cu", "strided_copy" + Bits(src)), Grid(dst.NumEl), Block, 0, Ptr(src), Ptr(dst), (long)dst.NumEl, Layout("copy", dst, src));
            return;
        }
        // A cast: one kernel where there is one, else through float32 (exact for every value bf16, fp16, bool, uint8
        // and int32 hold; int64 beyond 2^24 rounds as float32 would).
        string? kernel = CastKernel(src.DType, dst.DType);
        using var s = src.IsContiguous ? src.Alias() : Ops.ContiguousNoGrad(src);
        if (kernel == null)
        {
            if (CastKernel(src.DType, DType.Float32) == null || CastKernel(DType.Float32, dst.DType) == null)
                throw NoKernel($"the cast {src.DType.TorchName()} → {dst.DType.TorchName()}");
            using var mid = Tensor.Empty(dst.ShapeArray, DType.Float32, dst.Device);
            Copy(s, mid);
            Copy(mid, dst);
            return;
        }
        context.Launch(Kernel("cast.cu", kernel), Grid(dst.NumEl), Block, 0, Ptr(s), Ptr(dst), (long)dst.NumEl);
    }

    /// <summary>The cast.cu kernel converting <paramref name="from"/> to <paramref name="to"/>, or null.</summary>
    private static string? CastKernel(DType from, DType to) => (from, to) switch
    {
        (DType.Float32, DType.BFloat16) => "f32_to_bf16",
        (DType.BFloat16, DType.Float32) => "bf16_to_f32",
        (DType.Float32, DType.Float16) => "f32_to_f16",
        (DType.Float16, DType.Float32) => "f16_to_f32",
        (DType.Float32, DType.Float64) => "f32_to_f64",
        (DType.Float64, DType.Float32) => "f64_to_f32",
        (DType.Float32, DType.Int64) => "f32_to_i64",
        (DType.Float32, DType.Int32) => "f32_to_i32",
        (DType.Float32, DType.Bool) => "f32_to_bool",
        (DType.Int64, DType.Float32) => "i64_to_f32",
        (DType.Int32, DType.Float32) => "i32_to_f32",
        (DType.Bool or DType.UInt8, DType.Float32) => "u8_to_f32",
        (DType.Int32, DType.Int64) => "i32_to_i64",
        (DType.Int64, DType.Int32) => "i64_to_i32",
        (DType.Bool or DType.UInt8, DType.Int64) => "u8_to_i64",
        (DType.Int64, DType.Bool) => "i64_to_bool",
        _ => null,
    };

    public void Binary(BinaryOp op, Tensor a, Tensor b, Tensor r)
    {
        Float32(op.ToString().ToLowerInvariant(), a, b, r);
        if (r.NumEl == 0) return;
        string name = op switch
        {
            BinaryOp.Add => "add", BinaryOp.Sub => "sub", BinaryOp.Mul => "mul", BinaryOp.Div => "div",
            BinaryOp.Maximum => "maximum", BinaryOp.Minimum => "minimum", BinaryOp.Pow => "pow",
            _ => throw NoKernel(op.ToString().ToLowerInvariant()),
        };
        bool dense = a.IsContiguous && b.IsContiguous && a.NumEl == r.NumEl && b.NumEl == r.NumEl && NoZeroStrides(a) && NoZeroStrides(b);
        if (dense)
        {
            context.Launch(Kernel("elementwise.cu", name + "_f32"), Grid(r.NumEl), Block, 0, Ptr(a), Ptr(b), Ptr(r), (long)r.NumEl);
            return;
        }
        context.Launch(Kernel("elementwise.cu", name + "_broadcast_f32"), Grid(r.NumEl), Block, 0, Ptr(a), Ptr(b), Ptr(r), (long)r.NumEl, Layout(name, r, a, b));
    }

    /// <summary>The strided-copy kernel suffix for t's element size ("_b32" ...): copies move bits, any dtype.</summary>
    private static string Bits(Tensor t) => "_b" + t.DType.SizeOf() * 8;

    private static bool NoZeroStrides(Tensor t)
    {
        for (int d = 0; d < t.Rank; d++) if (t.Strides[d] == 0 && t.Shape[d] > 1) return false;
        return true;
    }

    private Tensor Materialise(Tensor t)
    {
        var c = Tensor.Empty(t.Shape, t.DType, t.Device);
        context.Launch(Kernel("elementwise.cu", "strided_copy" + Bits(t)), Grid(c.NumEl), Block, 0, Ptr(t), Ptr(c), (long)c.NumEl, Layout("copy", c, t));
        return c;
    }

    public void Unary(UnaryOp op, Tensor x, Tensor r, double alpha)
    {
        Float32(op.ToString().ToLowerInvariant(), x, r);
        if (r.NumEl == 0) return;
        long n = r.NumEl;
        switch (op)
        {
            case UnaryOp.Neg:
                context.Launch(Kernel("elementwise.cu", "affine_f32"), Grid(n), Block, 0, Ptr(x), Ptr(r), -1f, 0f, n);
                return;
            case UnaryOp.PowScalar:
                context.Launch(Kernel("elementwise.cu", "pow_scalar_f32"), Grid(n), Block, 0, Ptr(x), Ptr(r), (float)alpha, n);
                return;
            case UnaryOp.LeakyRelu:
                context.Launch(Kernel("elementwise.cu", "leaky_relu_f32"), Grid(n), Block, 0, Ptr(x), Ptr(r), n, (float)alpha);
                return;
        }
        string name = op switch
        {
            UnaryOp.Relu => "relu", UnaryOp.Sigmoid => "sigmoid", UnaryOp.Tanh => "tanh", UnaryOp.Exp => "exp", UnaryOp.Log => "log",
            UnaryOp.Sqrt => "sqrt", UnaryOp.Abs => "abs", UnaryOp.Silu => "silu", UnaryOp.GeluTanh => "gelu", UnaryOp.Gelu => "gelu_erf",
            UnaryOp.Log1p => "log1p", UnaryOp.Rsqrt => "rsqrt", UnaryOp.Sign => "sign", UnaryOp.Reciprocal => "reciprocal",
            _ => throw NoKernel(op.ToString().ToLowerInvariant()),
        };
        context.Launch(Kernel("elementwise.cu", name + "_f32"), Grid(n), Block, 0, Ptr(x), Ptr(r), n);
    }

    public void Clamp(Tensor x, Tensor r, double lo, double hi)
    {
        Float32("clamp", x, r);
        if (r.NumEl == 0) return;
        // ±inf bounds pass as ±inf floats: the comparisons are then never true.
        context.Launch(Kernel("elementwise.cu", "clamp_f32"), Grid(r.NumEl), Block, 0, Ptr(x), Ptr(r), (long)r.NumEl, (float)lo, (float)hi);
    }

    public void UnaryBackward(UnaryOp op, Tensor x, Tensor y, Tensor g, Tensor dx, double alpha)
    {
        Float32(op.ToString().ToLowerInvariant() + " backward", x, y, g, dx);
        if (dx.NumEl == 0) return;
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
                context.Launch(Kernel("elementwise.cu", "affine_f32"), Grid(n), Block, 0, Ptr(dx), Ptr(dx), 0.5f, 0f, n);
                return;
            case UnaryOp.PowScalar: // dx = g·p·x^(p−1)
            {
                using var t = Tensor.Empty(x.Shape, DType.Float32, x.Device);
                context.Launch(Kernel("elementwise.cu", "pow_scalar_f32"), Grid(n), Block, 0, Ptr(x), Ptr(t), (float)(alpha - 1), n);
                context.Launch(Kernel("elementwise.cu", "mul_f32"), Grid(n), Block, 0, Ptr(g), Ptr(t), Ptr(dx), n);
                context.Launch(Kernel("elementwise.cu", "affine_f32"), Grid(n), Block, 0, Ptr(dx), Ptr(dx), (float)alpha, 0f, n);
                return;
            }
        }
        switch (op)
        {
            case UnaryOp.LeakyRelu:
                context.Launch(Kernel("elementwise.cu", "leaky_relu_backward_f32"), Grid(n), Block, 0, Ptr(x), Ptr(g), Ptr(dx), n, (float)alpha);
                return;
            case UnaryOp.Sign: // zero almost everywhere
                Fill(dx, 0);
                return;
        }
        (string Name, Tensor From) k = op switch
        {
            UnaryOp.Relu => ("relu_backward_f32", x), UnaryOp.GeluTanh => ("gelu_backward_f32", x), UnaryOp.Silu => ("silu_backward_f32", x),
            UnaryOp.Gelu => ("gelu_erf_backward_f32", x), UnaryOp.Abs => ("abs_backward_f32", x), UnaryOp.Log1p => ("log1p_backward_f32", x),
            UnaryOp.Rsqrt => ("rsqrt_backward_f32", y), UnaryOp.Reciprocal => ("reciprocal_backward_f32", y),
            UnaryOp.Sigmoid => ("sigmoid_backward_f32", y), UnaryOp.Tanh => ("tanh_backward_f32", y),
            UnaryOp.Neg => ("affine_f32", g),
            _ => throw NoKernel(op.ToString().ToLowerInvariant() + " backward"),
        };
        if (op == UnaryOp.Neg) context.Launch(Kernel("elementwise.cu", k.Name), Grid(n), Block, 0, Ptr(g), Ptr(dx), -1f, 0f, n);
        else context.Launch(Kernel("elementwise.cu", k.Name), Grid(n), Block, 0, Ptr(k.From), Ptr(g), Ptr(dx), n);
    }

    /// <summary>A 2-D view as cuBLAS sees it: (transposed?, leading dimension), or null when it needs a copy.</summary>
    private static (bool Trans, int Ld)? AsColumnMajorOperand(Tensor t)
    {
        int rows = t.Shape[0], cols = t.Shape[1];
        long s0 = t.Strides[0], s1 = t.Strides[1];
        // Row-major (stride[1] = 1): column-major it is the transpose, read with op N.
        if ((cols == 1 || s1 == 1) && (rows == 1 || s0 >= Math.Max(cols, 1))) return (false, rows == 1 ? Math.Max(cols, 1) : (int)s0);
        // Column-major (a transposed view, stride[0] = 1): read with op T.
        if ((rows == 1 || s0 == 1) && (cols == 1 || s1 >= Math.Max(rows, 1))) return (true, cols == 1 ? Math.Max(rows, 1) : (int)s1);
        return null;
    }

    public void Gemm(Tensor a, Tensor b, Tensor c, bool accumulate, bool bf16Inputs = false)
    {
        Float32("matmul", a, b, c);
        int m = a.Shape[0], k = a.Shape[1], n = b.Shape[1];
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            if (!accumulate) Fill(c, 0);
            return;
        }
        if (c.Strides[1] != 1 && n > 1) throw new InvalidOperationException("internal: gemm on cuda writes row-major output");
        using var ac = AsColumnMajorOperand(a) == null ? Materialise(a) : a.Alias();
        using var bc = AsColumnMajorOperand(b) == null ? Materialise(b) : b.Alias();
        var (ta, lda) = AsColumnMajorOperand(ac)!.Value;
        var (tb, ldb) = AsColumnMajorOperand(bc)!.Value;
        int ldc = m == 1 ? Math.Max(n, 1) : c.Strides[0];
        if (bf16Inputs)
        {
            // Autocast: contiguous bf16 copies of the operands (row-major, op N), then the tensor-core GEMM.
            using var a16 = ToBf16(ac);
            using var b16 = ToBf16(bc);
            context.GemmBf16(false, false, n, m, k, Ptr(b16), Math.Max(n, 1), Ptr(a16), Math.Max(k, 1), accumulate ? 1f : 0f, Ptr(c), ldc);
            return;
        }
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: B first, then A, no copies.
        context.GemmF32(tb, ta, n, m, k, Ptr(bc), ldb, Ptr(ac), lda, accumulate ? 1f : 0f, Ptr(c), ldc, CudaBackend.AllowTf32);
    }

    public void GemmBatched(Tensor a, Tensor b, Tensor c, bool bf16Inputs = false)
    {
        Float32("matmul", a, b, c);
        int batch = a.Shape[0], m = a.Shape[1], k = a.Shape[2], n = b.Shape[2];
        if (batch == 0 || m == 0 || n == 0) return;
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
        context.GemmStridedBatched(tb, ta, n, m, k, Ptr(bc), ldb, bc.Strides[0], Ptr(ac), lda, ac.Strides[0], Ptr(c), n, (long)m * n, batch,
            bf16Inputs, CudaBackend.AllowTf32);
    }

    /// <summary>The first matrix of a [batch, rows, cols] view (a view, not a copy; disposal is the caller's).</summary>
    private static Tensor Slice0(Tensor t) => t.View([t.Shape[1], t.Shape[2]], [t.Strides[1], t.Strides[2]], t.Offset);

    private Tensor BatchOperand(Tensor t)
    {
        using var first = Slice0(t);
        return AsColumnMajorOperand(first) != null ? t.Alias() : Converted(t, t.DType);
    }

    /// <summary>A contiguous copy of <paramref name="t"/> in <paramref name="dtype"/>.</summary>
    private Tensor Converted(Tensor t, DType dtype)
    {
        var r = Tensor.Empty(t.ShapeArray, dtype, t.Device);
        Copy(t, r);
        return r;
    }

    /// <summary>A contiguous bf16 copy of a float32 view (round to nearest even, as the CPU).</summary>
    private Tensor ToBf16(Tensor t)
    {
        var r = Tensor.Empty(t.Shape, DType.BFloat16, t.Device);
        Copy(t, r);
        return r;
    }

    public void Sum(Tensor x, int outer, int reduced, int inner, Tensor r, double scale)
    {
        Float32("sum", x, r);
        if (inner != 1) throw new InvalidOperationException("internal: the cuda sum reduces the last dim");
        if (outer == 0) return;
        if (reduced == 0)
        {
            Fill(r, 0);
            return;
        }
        context.Launch(Kernel("reduce.cu", "sum_rows_f32"), Rows(outer), Block, 0, Ptr(x), Ptr(r), (long)outer, (long)reduced, (float)scale);
    }

    public void Softmax(Tensor x, Tensor y, int rows, int n, bool log)
    {
        Float32(log ? "log_softmax" : "softmax", x, y);
        if (rows == 0 || n == 0) return;
        context.Launch(Kernel("softmax.cu", log ? "log_softmax_f32" : "softmax_f32"), Rows(rows), Block, 0, Ptr(x), Ptr(y), (long)rows, (long)n);
    }

    public void SoftmaxBackward(Tensor y, Tensor g, Tensor dx, int rows, int n, bool log)
    {
        Float32(log ? "log_softmax backward" : "softmax backward", y, g, dx);
        if (rows == 0 || n == 0) return;
        context.Launch(Kernel("softmax.cu", log ? "log_softmax_backward_f32" : "softmax_backward_f32"), Rows(rows), Block, 0, Ptr(y), Ptr(g), Ptr(dx), (long)rows, (long)n);
    }

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor rowLoss, Tensor dlogits, long ignoreIndex, double smoothing, Tensor? counted)
    {
        Float32("cross_entropy", logits, rowLoss, dlogits);
        if (targets.DType != DType.Int64) throw new DTypeMismatchException("cross_entropy on cuda: targets must be int64");
        int rows = logits.Shape[0], cols = logits.Shape[1];
        if (counted != null) context.Launch(Kernel("softmax.cu", "count_targets_f32"), 1, Block, 0, Ptr(targets), (long)rows, ignoreIndex, Ptr(counted));
        if (rows == 0) return;
        context.Launch(Kernel("softmax.cu", "cross_entropy_f32"), Rows(rows), Block, 0, Ptr(logits), Ptr(targets), Ptr(rowLoss), Ptr(dlogits),
            (long)rows, (long)cols, ignoreIndex, (float)smoothing, counted != null ? Ptr(counted) : 0UL);
    }

    public void SgdStep(Tensor p, Tensor g, Tensor? buffer, Tensor lr, double momentum, double dampening, double weightDecay, bool nesterov, bool first)
    {
        Float32("sgd", p, g, lr);
        if (p.NumEl == 0) return;
        context.Launch(Kernel("optim.cu", "sgd_f32"), Grid(p.NumEl), Block, 0, Ptr(p), Ptr(g), buffer != null ? Ptr(buffer) : 0UL, (long)p.NumEl,
            Ptr(lr), (float)momentum, (float)dampening, (float)weightDecay, nesterov ? 1 : 0, first ? 1 : 0);
    }

    public void AdamStep(Tensor p, Tensor g, Tensor m, Tensor v, Tensor step, Tensor lr, double beta1, double beta2, double eps, double weightDecay, bool decoupled)
    {
        Float32("adam", p, g, m, v, step, lr);
        // t += 1 and [1 − β1^t, 1 − β2^t] on the device (one thread, double precision), then the fused update reads them.
        using var bias = Tensor.Empty([2], DType.Float32, p.Device);
        context.Launch(Kernel("optim.cu", "adam_advance_f32"), 1, 32, 0, Ptr(step), Ptr(bias), beta1, beta2);
        if (p.NumEl == 0) return;
        context.Launch(Kernel("optim.cu", "adam_f32"), Grid(p.NumEl), Block, 0, Ptr(p), Ptr(g), Ptr(m), Ptr(v), (long)p.NumEl,
            Ptr(lr), (float)beta1, (float)beta2, (float)eps, (float)weightDecay, decoupled ? 1 : 0, Ptr(bias));
    }

    /// <summary>native/kernels/conv.cu's struct ConvShape.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct ConvShape
    {
        public int C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW;
    }

    /// <summary>native/kernels/pool.cu's struct PoolShape (no dilation).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct PoolShape
    {
        public int Planes, H, W, KH, KW, SH, SW, PH, PW, OH, OW;
    }

    private static ConvShape Shape(Conv2dGeometry g) => new()
    {
        C = g.C, H = g.H, W = g.W, KH = g.KH, KW = g.KW, SH = g.SH, SW = g.SW, PH = g.PH, PW = g.PW, DH = g.DH, DW = g.DW, OH = g.OH, OW = g.OW,
    };

    public void Im2Col(Tensor x, int group, int cg, Conv2dGeometry geo, Tensor cols)
    {
        Float32("conv2d", x, cols);
        if (cols.NumEl == 0) return;
        context.Launch(Kernel("conv.cu", "im2col_batch_f32"), Grid(cols.NumEl), Block, 0, Ptr(x), Ptr(cols), Shape(geo), (long)x.Shape[0], x.Shape[1], group * cg);
    }

    public void Col2Im(Tensor cols, int group, int cg, Conv2dGeometry geo, Tensor dx)
    {
        Float32("conv2d backward", cols, dx);
        long n = (long)dx.Shape[0] * cg * geo.H * geo.W;
        if (n == 0) return;
        context.Launch(Kernel("conv.cu", "col2im_batch_f32"), Grid(n), Block, 0, Ptr(cols), Ptr(dx), Shape(geo), (long)dx.Shape[0], dx.Shape[1], group * cg);
    }

    private static PoolShape Pool(int planes, Conv2dGeometry g)
    {
        if (g.DH != 1 || g.DW != 1) throw new DeviceMismatchException("max_pool2d with dilation has no cuda kernel yet");
        return new PoolShape { Planes = planes, H = g.H, W = g.W, KH = g.KH, KW = g.KW, SH = g.SH, SW = g.SW, PH = g.PH, PW = g.PW, OH = g.OH, OW = g.OW };
    }

    public Tensor MaxPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo)
    {
        Float32("max_pool2d", x, y);
        var shape = Pool(planes, geo);
        var indices = Tensor.Empty(y.Shape, DType.Int32, y.Device); // the kernel's argmax is an int per output
        if (y.NumEl > 0)
            context.Launch(Kernel("pool.cu", "maxpool2d_f32"), Grid(y.NumEl), Block, 0, Ptr(x), Ptr(y), Ptr(indices), shape);
        return indices;
    }

    public void MaxPoolBackward(Tensor gy, Tensor indices, Tensor dx, int planes, Conv2dGeometry geo)
    {
        Float32("max_pool2d backward", gy, dx);
        if (gy.NumEl == 0) return;
        context.Launch(Kernel("pool.cu", "maxpool2d_backward_f32"), Grid(gy.NumEl), Block, 0, Ptr(gy), Ptr(indices), Ptr(dx), Pool(planes, geo));
    }

    public void Embedding(Tensor weight, Tensor ids, Tensor output)
    {
        Float32("embedding", weight, output);
        int count = output.Shape[0], dim = output.Shape[1];
        if (count == 0 || dim == 0) return;
        context.Launch(Kernel("embedding.cu", "embedding_f32"), Rows(count), Block, 0, Ptr(weight), Ptr(ids), Ptr(output), (long)count, (long)dim, (long)weight.Shape[0]);
    }

    public void EmbeddingBackward(Tensor dout, Tensor ids, Tensor dweight)
    {
        Float32("embedding backward", dout, dweight);
        int count = dout.Shape[0], dim = dout.Shape[1];
        if (count == 0 || dim == 0) return;
        context.Launch(Kernel("embedding.cu", "embedding_backward_f32"), Rows(count), Block, 0, Ptr(dout), Ptr(ids), Ptr(dweight), (long)count, (long)dim, (long)dweight.Shape[0]);
    }

    public void Extreme(Tensor x, int rows, int n, Tensor? values, Tensor? indices, bool max)
    {
        Float32(max ? "max" : "min", x);
        if (values != null) Float32(max ? "max" : "min", values);
        if (rows == 0) return;
        context.Launch(Kernel("reduce.cu", "extreme_rows_f32"), Rows(rows), Block, 0, Ptr(x), values != null ? Ptr(values) : 0UL,
            indices != null ? Ptr(indices) : 0UL, (long)rows, (long)n, max ? 1 : 0);
    }

    public void Compare(CompareOp op, Tensor a, Tensor b, Tensor r)
    {
        string suffix = a.DType switch
        {
            DType.Float32 => "f32", DType.Int64 => "i64", DType.Int32 => "i32",
            _ => throw new DTypeMismatchException($"comparisons on cuda: float32, int64 or int32 (got {a.DType.TorchName()})"),
        };
        if (r.NumEl == 0) return;
        context.Launch(Kernel("compare.cu", "compare_" + suffix), Grid(r.NumEl), Block, 0, Ptr(a), Ptr(b), Ptr(r), (long)r.NumEl, (int)op, Layout("compare", r, a, b));
    }

    public void Where(Tensor condition, Tensor a, Tensor b, Tensor r)
    {
        int size = r.DType.SizeOf();
        if (size is not (4 or 8)) throw new DTypeMismatchException($"where on cuda: 4- or 8-byte dtypes (got {r.DType.TorchName()})");
        if (r.NumEl == 0) return;
        if (r.Rank > 8) throw new ShapeMismatchException($"where on cuda: at most 8 dimensions (got {r.Rank})");
        var s = new Broadcast3 { Ndim = Math.Max(r.Rank, 1) };
        s.Shape[0] = 1;
        Tensor[] operands = [condition, a, b];
        for (int d = 0; d < r.Rank; d++)
        {
            s.Shape[d] = r.Shape[d];
            for (int k = 0; k < 3; k++) s.Stride[k * 8 + d] = operands[k].Strides[d];
        }
        context.Launch(Kernel("compare.cu", size == 4 ? "where_32" : "where_64"), Grid(r.NumEl), Block, 0, Ptr(condition), Ptr(a), Ptr(b), Ptr(r), (long)r.NumEl, s);
    }

    /// <summary>The gather/scatter layout: <paramref name="index"/>'s shape, the strided tensor's, the index's and the
    /// other operand's strides.</summary>
    private static IndexShape IndexLayout(string op, int dim, Tensor strided, Tensor index, Tensor other)
    {
        if (index.Rank > 8) throw new ShapeMismatchException($"{op} on cuda: at most 8 dimensions (got {index.Rank})");
        if (index.DType != DType.Int64) throw new DTypeMismatchException($"{op} on cuda: the index must be int64");
        var s = new IndexShape { Ndim = Math.Max(index.Rank, 1), Dim = dim };
        s.Shape[0] = 1;
        for (int d = 0; d < index.Rank; d++)
        {
            s.Shape[d] = index.Shape[d];
            s.XStride[d] = strided.Strides[d];
            s.IStride[d] = index.Strides[d];
            s.OStride[d] = other.Strides[d];
        }
        return s;
    }

    public void Gather(Tensor x, int dim, Tensor index, Tensor r)
    {
        if (x.DType.SizeOf() != 4) throw new DTypeMismatchException($"gather on cuda: 4-byte dtypes (got {x.DType.TorchName()})");
        if (r.NumEl == 0) return;
        context.Launch(Kernel("index.cu", "gather_32"), Grid(r.NumEl), Block, 0, Ptr(x), Ptr(index), Ptr(r), (long)r.NumEl, IndexLayout("gather", dim, x, index, r));
    }

    public void ScatterAdd(Tensor r, int dim, Tensor index, Tensor src)
    {
        Float32("scatter_add", r, src);
        if (index.NumEl == 0) return;
        context.Launch(Kernel("index.cu", "scatter_add_f32"), Grid(index.NumEl), Block, 0, Ptr(r), Ptr(index), Ptr(src), (long)index.NumEl, IndexLayout("scatter_add", dim, r, index, src));
    }

    public void Bernoulli(Tensor r, ulong seed, ulong start, double p, double value)
    {
        Float32("bernoulli", r);
        if (r.NumEl == 0) return;
        // uniform = k / 2^24 < p  ⇔  k < ceil(p · 2^24): exact, as the CPU's double comparison.
        uint threshold = (uint)Math.Ceiling(p * 16777216.0);
        context.Launch(Kernel("random.cu", "bernoulli_f32"), Grid(r.NumEl), Block, 0, Ptr(r), (long)r.NumEl, seed, start, threshold, (float)value);
    }

    public void LayerNorm(Tensor x, Tensor? weight, Tensor? bias, Tensor y, Tensor mean, Tensor rstd, int rows, int n, double eps)
    {
        Float32("layer_norm", x, y, mean, rstd);
        if (rows == 0) return;
        context.Launch(Kernel("layernorm.cu", "layernorm_f32"), Rows(rows), Block, 0, Ptr(x), weight != null ? Ptr(weight) : 0UL, bias != null ? Ptr(bias) : 0UL,
            Ptr(y), Ptr(mean), Ptr(rstd), (long)rows, (long)n, (float)eps);
    }

    public void LayerNormBackward(Tensor x, Tensor? weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor? dweight, Tensor? dbias, int rows, int n)
    {
        Float32("layer_norm backward", x, dy, dx);
        if (rows == 0 || n == 0)
        {
            if (dweight != null) Fill(dweight, 0);
            if (dbias != null) Fill(dbias, 0);
            return;
        }
        context.Launch(Kernel("layernorm.cu", "layernorm_backward_f32"), Rows(rows), Block, 0, Ptr(x), weight != null ? Ptr(weight) : 0UL, Ptr(dy),
            Ptr(mean), Ptr(rstd), Ptr(dx), (long)rows, (long)n);
        if (dweight == null && dbias == null) return;
        // Chunks of 64 rows: enough (chunk, column) threads to fill the GPU, and a short second pass.
        const int chunk = 64;
        int chunks = (rows + chunk - 1) / chunk;
        using var pw = Tensor.Empty([chunks, n], DType.Float32, x.Device);
        using var pb = Tensor.Empty([chunks, n], DType.Float32, x.Device);
        context.Launch(Kernel("layernorm.cu", "layernorm_param_partial_f32"), Grid((long)chunks * n), Block, 0, Ptr(x), Ptr(dy), Ptr(mean), Ptr(rstd),
            Ptr(pw), Ptr(pb), (long)rows, (long)n, (long)chunk);
        if (dweight != null) context.Launch(Kernel("reduce.cu", "sum_cols_f32"), Grid(n), Block, 0, Ptr(pw), Ptr(dweight), (long)chunks, (long)n, 1f);
        if (dbias != null) context.Launch(Kernel("reduce.cu", "sum_cols_f32"), Grid(n), Block, 0, Ptr(pb), Ptr(dbias), (long)chunks, (long)n, 1f);
    }

    public void BatchNorm(Tensor x, Tensor y, int n, int c, int l, Tensor? weight, Tensor? bias, Tensor mean, Tensor rstd, bool batchStats, double eps)
    {
        Float32("batch_norm", x, y, mean, rstd);
        if (x.NumEl == 0) return;
        if (batchStats)
            context.Launch(Kernel("batchnorm.cu", "batchnorm_stats_f32"), Rows(c), 512, 0, Ptr(x), Ptr(mean), Ptr(rstd), (long)n, (long)c, (long)l, (float)eps);
        context.Launch(Kernel("batchnorm.cu", "batchnorm_apply_f32"), Grid(x.NumEl), Block, 0, Ptr(x), Ptr(y), weight != null ? Ptr(weight) : 0UL,
            bias != null ? Ptr(bias) : 0UL, Ptr(mean), Ptr(rstd), (long)x.NumEl, (long)c, (long)l);
    }

    public void BatchNormBackward(Tensor x, Tensor g, Tensor? dx, Tensor? dweight, Tensor? dbias, int n, int c, int l, Tensor? weight, Tensor mean, Tensor rstd, bool batchStats)
    {
        Float32("batch_norm backward", x, g, mean, rstd);
        // sums = [Σg per channel, Σg·x̂ per channel]: db and dw as they are, and what dx needs.
        using var sums = Tensor.Empty([2 * c], DType.Float32, x.Device);
        if (x.NumEl == 0) Fill(sums, 0);
        else context.Launch(Kernel("batchnorm.cu", "batchnorm_backward_reduce_f32"), Rows(c), 512, 0, Ptr(x), Ptr(g), Ptr(mean), Ptr(rstd), Ptr(sums),
            (long)n, (long)c, (long)l);
        if (dbias != null && c > 0) context.CopyDeviceToDevice(Ptr(dbias), Ptr(sums), 4L * c);
        if (dweight != null && c > 0) context.CopyDeviceToDevice(Ptr(dweight), Ptr(sums) + 4UL * (ulong)c, 4L * c);
        if (dx == null || x.NumEl == 0) return;
        context.Launch(Kernel("batchnorm.cu", "batchnorm_backward_apply_f32"), Grid(x.NumEl), Block, 0, Ptr(x), Ptr(g), Ptr(dx), weight != null ? Ptr(weight) : 0UL,
            Ptr(mean), Ptr(rstd), Ptr(sums), (long)x.NumEl, (long)c, (long)l, (float)((double)n * l), batchStats ? 1 : 0);
    }

    public void AvgPool(Tensor x, Tensor y, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Float32("avg_pool2d", x, y);
        if (y.NumEl == 0) return;
        context.Launch(Kernel("pool.cu", "avgpool2d_f32"), Grid(y.NumEl), Block, 0, Ptr(x), Ptr(y), Pool(planes, geo), countIncludePad ? 1 : 0);
    }

    public void AvgPoolBackward(Tensor gy, Tensor dx, int planes, Conv2dGeometry geo, bool countIncludePad)
    {
        Float32("avg_pool2d backward", gy, dx);
        if (gy.NumEl == 0) return;
        context.Launch(Kernel("pool.cu", "avgpool2d_backward_f32"), Grid(gy.NumEl), Block, 0, Ptr(gy), Ptr(dx), Pool(planes, geo), countIncludePad ? 1 : 0);
    }
}
