using HpcEngine.Backends.Cpu;

namespace HpcEngine;

/// <summary>The ops as methods and operators, PyTorch-style: <c>x.MatMul(w).Add(b).Relu()</c>, <c>a * b +
/// 1</c>.</summary>
public sealed partial class Tensor
{
    /// <inheritdoc cref="Ops.Add(Tensor, Tensor)"/>
    public Tensor Add(Tensor other) => Ops.Add(this, other);

    /// <inheritdoc cref="Ops.Sub(Tensor, Tensor)"/>
    public Tensor Sub(Tensor other) => Ops.Sub(this, other);

    /// <inheritdoc cref="Ops.Mul(Tensor, Tensor)"/>
    public Tensor Mul(Tensor other) => Ops.Mul(this, other);

    /// <inheritdoc cref="Ops.Div(Tensor, Tensor)"/>
    public Tensor Div(Tensor other) => Ops.Div(this, other);

    /// <inheritdoc cref="Ops.Pow(Tensor, double)"/>
    public Tensor Pow(double exponent) => Ops.Pow(this, exponent);

    /// <inheritdoc cref="Ops.Neg(Tensor)"/>
    public Tensor Neg() => Ops.Neg(this);

    /// <inheritdoc cref="Ops.Abs(Tensor)"/>
    public Tensor Abs() => Ops.Abs(this);

    /// <inheritdoc cref="Ops.Exp(Tensor)"/>
    public Tensor Exp() => Ops.Exp(this);

    /// <inheritdoc cref="Ops.Log(Tensor)"/>
    public Tensor Log() => Ops.Log(this);

    /// <inheritdoc cref="Ops.Log1p(Tensor)"/>
    public Tensor Log1p() => Ops.Log1p(this);

    /// <inheritdoc cref="Ops.Sin(Tensor)"/>
    public Tensor Sin() => Ops.Sin(this);

    /// <inheritdoc cref="Ops.Cos(Tensor)"/>
    public Tensor Cos() => Ops.Cos(this);

    /// <inheritdoc cref="Ops.Tan(Tensor)"/>
    public Tensor Tan() => Ops.Tan(this);

    /// <inheritdoc cref="Ops.Asin(Tensor)"/>
    public Tensor Asin() => Ops.Asin(this);

    /// <inheritdoc cref="Ops.Acos(Tensor)"/>
    public Tensor Acos() => Ops.Acos(this);

    /// <inheritdoc cref="Ops.Atan(Tensor)"/>
    public Tensor Atan() => Ops.Atan(this);

    /// <inheritdoc cref="Ops.Sinh(Tensor)"/>
    public Tensor Sinh() => Ops.Sinh(this);

    /// <inheritdoc cref="Ops.Cosh(Tensor)"/>
    public Tensor Cosh() => Ops.Cosh(this);

    /// <inheritdoc cref="Ops.Erf(Tensor)"/>
    public Tensor Erf() => Ops.Erf(this);

    /// <inheritdoc cref="Ops.Expm1(Tensor)"/>
    public Tensor Expm1() => Ops.Expm1(this);

    /// <inheritdoc cref="Ops.Log2(Tensor)"/>
    public Tensor Log2() => Ops.Log2(this);

    /// <inheritdoc cref="Ops.Log10(Tensor)"/>
    public Tensor Log10() => Ops.Log10(this);

    /// <inheritdoc cref="Ops.Floor(Tensor)"/>
    public Tensor Floor() => Ops.Floor(this);

    /// <inheritdoc cref="Ops.Ceil(Tensor)"/>
    public Tensor Ceil() => Ops.Ceil(this);

    /// <inheritdoc cref="Ops.Round(Tensor)"/>
    public Tensor Round() => Ops.Round(this);

    /// <inheritdoc cref="Ops.Trunc(Tensor)"/>
    public Tensor Trunc() => Ops.Trunc(this);

    /// <inheritdoc cref="Ops.Frac(Tensor)"/>
    public Tensor Frac() => Ops.Frac(this);

    /// <inheritdoc cref="Ops.Sqrt(Tensor)"/>
    public Tensor Sqrt() => Ops.Sqrt(this);

    /// <inheritdoc cref="Ops.Rsqrt(Tensor)"/>
    public Tensor Rsqrt() => Ops.Rsqrt(this);

    /// <inheritdoc cref="Ops.Tanh(Tensor)"/>
    public Tensor Tanh() => Ops.Tanh(this);

    /// <inheritdoc cref="Ops.Sigmoid(Tensor)"/>
    public Tensor Sigmoid() => Ops.Sigmoid(this);

    /// <inheritdoc cref="Ops.Relu(Tensor)"/>
    public Tensor Relu() => Ops.Relu(this);

    /// <inheritdoc cref="Ops.Clamp(Tensor, Nullable{double}, Nullable{double})"/>
    public Tensor Clamp(double? min = null, double? max = null) => Ops.Clamp(this, min, max);

    /// <inheritdoc cref="Ops.MatMul(Tensor, Tensor)"/>
    public Tensor MatMul(Tensor other) => Ops.MatMul(this, other);

    /// <inheritdoc cref="Ops.Sum(Tensor, int[], bool)"/>
    public Tensor Sum(int[]? dims = null, bool keepDim = false) => Ops.Sum(this, dims, keepDim);

    /// <inheritdoc cref="Ops.Sum"/>
    public Tensor Sum(int dim, bool keepDim = false) => Ops.Sum(this, [dim], keepDim);

    /// <inheritdoc cref="Ops.Mean(Tensor, int[], bool)"/>
    public Tensor Mean(int[]? dims = null, bool keepDim = false) => Ops.Mean(this, dims, keepDim);

    /// <inheritdoc cref="Ops.Mean"/>
    public Tensor Mean(int dim, bool keepDim = false) => Ops.Mean(this, [dim], keepDim);

    /// <inheritdoc cref="Ops.Var(Tensor, int[], bool, double)"/>
    public Tensor Var(int[]? dims = null, bool keepDim = false, double correction = 1) =>
        Ops.Var(this, dims, keepDim, correction);

    /// <inheritdoc cref="Ops.Std(Tensor, int[], bool, double)"/>
    public Tensor Std(int[]? dims = null, bool keepDim = false, double correction = 1) =>
        Ops.Std(this, dims, keepDim, correction);

    /// <inheritdoc cref="Ops.Max(Tensor)"/>
    public Tensor Max() => Ops.Max(this);

    /// <inheritdoc cref="Ops.Min(Tensor)"/>
    public Tensor Min() => Ops.Min(this);

    /// <inheritdoc cref="Ops.Max(Tensor, int, bool)"/>
    public (Tensor Values, Tensor Indices) Max(int dim, bool keepDim = false) => Ops.Max(this, dim, keepDim);

    /// <inheritdoc cref="Ops.Min(Tensor, int, bool)"/>
    public (Tensor Values, Tensor Indices) Min(int dim, bool keepDim = false) => Ops.Min(this, dim, keepDim);

    /// <inheritdoc cref="Ops.ArgMax(Tensor, int, bool)"/>
    public Tensor ArgMax(int dim, bool keepDim = false) => Ops.ArgMax(this, dim, keepDim);

    /// <inheritdoc cref="Ops.Norm(Tensor, double, int[], bool)"/>
    public Tensor Norm(double p = 2) => Ops.Norm(this, p);

    /// <inheritdoc cref="Ops.Reshape(Tensor, int[])"/>
    public Tensor Reshape(params int[] shape) => Ops.Reshape(this, shape);

    /// <inheritdoc cref="Ops.View(Tensor, int[])"/>
    public Tensor View(params int[] shape) => Ops.View(this, shape);

    /// <inheritdoc cref="Ops.Permute(Tensor, int[])"/>
    public Tensor Permute(params int[] dims) => Ops.Permute(this, dims);

    /// <inheritdoc cref="Ops.Transpose(Tensor, int, int)"/>
    public Tensor Transpose(int dim0, int dim1) => Ops.Transpose(this, dim0, dim1);

    /// <summary>The transpose of a 2-D tensor (a view).</summary>
    public Tensor T()
    {
        if (Rank != 2)
            throw new ShapeMismatchException(
                $"T(): expected a 2-D tensor, got shape {Shapes.Format(Shape)}; use Transpose(dim0, dim1)"
            );
        return Ops.Transpose(this, 0, 1);
    }

    /// <inheritdoc cref="Ops.Narrow(Tensor, int, int, int)"/>
    public Tensor Narrow(int dim, int start, int length) => Ops.Narrow(this, dim, start, length);

    /// <inheritdoc cref="Ops.Select(Tensor, int, int)"/>
    public Tensor Select(int dim, int index) => Ops.Select(this, dim, index);

    /// <inheritdoc cref="Ops.Expand(Tensor, int[])"/>
    public Tensor Expand(params int[] shape) => Ops.Expand(this, shape);

    /// <inheritdoc cref="Ops.Squeeze(Tensor, Nullable{int})"/>
    public Tensor Squeeze(int? dim = null) => Ops.Squeeze(this, dim);

    /// <inheritdoc cref="Ops.Unsqueeze(Tensor, int)"/>
    public Tensor Unsqueeze(int dim) => Ops.Unsqueeze(this, dim);

    /// <inheritdoc cref="Ops.Flatten(Tensor, int, int)"/>
    public Tensor Flatten(int startDim = 0, int endDim = -1) => Ops.Flatten(this, startDim, endDim);

    /// <summary>A contiguous tensor with these values: a new handle to the same memory when already
    /// contiguous.</summary>
    public Tensor Contiguous() => Ops.Contiguous(this);

    /// <summary>A copy with its own memory.</summary>
    public Tensor Clone() => Ops.Clone(this);

    /// <summary>Converts to another dtype (always a new handle).</summary>
    public Tensor To(DType dtype) => Ops.To(this, dtype);

    /// <summary>Moves to a device (differentiable: gradients flow back to this tensor's device). Only the CPU is built
    /// into the core; other devices come from a registered backend (<c>CudaBackend.Register()</c> in
    /// HpcEngine.Cuda).</summary>
    public Tensor To(Device device) => device == Device ? Ops.Identity(this) : Ops.ToDevice(this, device);

    // ---- in place (not recorded: for buffers, parameters under no-grad, and gradient accumulation) ----

    private void CheckInPlace(string op)
    {
        CheckAlive();
        if (Autograd.GradMode.IsEnabled && (RequiresGrad || GradFn != null))
            throw new InvalidOperationException(
                $"{op}: an in-place change of a tensor that takes part in autograd; do it under GradMode.NoGrad() or "
                    + $"on a detached copy"
            );
    }

    /// <summary>this += other (broadcast), in place.</summary>
    public Tensor AddInPlace(Tensor other)
    {
        ArgumentNullException.ThrowIfNull(other);
        CheckInPlace("add_");
        using var o = Ops.ToDType(other, DType, false);
        Ops.AddInto(this, o);
        return this;
    }

    /// <summary>this += alpha * other, in place.</summary>
    public Tensor AddInPlace(Tensor other, double alpha)
    {
        ArgumentNullException.ThrowIfNull(other);
        CheckInPlace("add_");
        using var scaled = Ops.MulScalar(other, alpha);
        using var o = Ops.ToDType(scaled, DType, false);
        Ops.AddInto(this, o);
        return this;
    }

    /// <summary>this *= s, in place.</summary>
    public Tensor MulInPlace(double s)
    {
        CheckInPlace("mul_");
        using var r = Ops.MulScalar(this, s);
        Ops.CopyInto(this, r);
        return this;
    }

    /// <summary>Copies <paramref name="src"/> into this tensor, in place.</summary>
    public Tensor CopyFrom(Tensor src)
    {
        CheckInPlace("copy_");
        Ops.CopyInto(this, src);
        return this;
    }

    /// <summary>Sets every element to <paramref name="value"/>, in place.</summary>
    public Tensor Fill(double value)
    {
        CheckInPlace("fill_");
        if (!IsCpu && IsContiguous)
        {
            FillRaw(value); // one fill kernel on the device, nothing from the host (capturable)
            BumpVersion();
            return this;
        }
        using var v = Scalar(value, DType);
        Ops.CopyInto(this, v);
        return this;
    }

    /// <summary>Sets every element to zero, in place.</summary>
    public Tensor Zero() => Fill(0);

    /// <summary>a + b (<see cref="Ops.Add"/>).</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);

    /// <summary>a − b (<see cref="Ops.Sub"/>).</summary>
    public static Tensor operator -(Tensor a, Tensor b) => Ops.Sub(a, b);

    /// <summary>Elementwise a · b (<see cref="Ops.Mul"/>; matrix product: <see cref="MatMul"/>).</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);

    /// <summary>a / b (<see cref="Ops.Div"/>).</summary>
    public static Tensor operator /(Tensor a, Tensor b) => Ops.Div(a, b);

    /// <summary>−a (<see cref="Ops.Neg"/>).</summary>
    public static Tensor operator -(Tensor a) => Ops.Neg(a);

    /// <summary>a + s.</summary>
    public static Tensor operator +(Tensor a, double s) => Ops.AddScalar(a, s);

    /// <summary>s + a.</summary>
    public static Tensor operator +(double s, Tensor a) => Ops.AddScalar(a, s);

    /// <summary>a − s.</summary>
    public static Tensor operator -(Tensor a, double s) => Ops.AddScalar(a, -s);

    /// <summary>s − a.</summary>
    public static Tensor operator -(double s, Tensor a) => Ops.RSubScalar(s, a);

    /// <summary>a · s.</summary>
    public static Tensor operator *(Tensor a, double s) => Ops.MulScalar(a, s);

    /// <summary>s · a.</summary>
    public static Tensor operator *(double s, Tensor a) => Ops.MulScalar(a, s);

    /// <summary>a / s.</summary>
    public static Tensor operator /(Tensor a, double s) => Ops.DivScalar(a, s);
}

/// <summary>Prints tensors like PyTorch: values (abbreviated when large), shape and dtype.</summary>
internal static class TensorFormat
{
    public static unsafe string Format(Tensor t)
    {
        if (t.IsDisposed)
            return "tensor(<disposed>)";
        var sb = new System.Text.StringBuilder("tensor(");
        int n = Math.Min(t.NumEl, 8);
        using var flat = t.IsCpu ? Ops.ContiguousNoGrad(t) : Ops.MoveNoGrad(t, Device.Cpu);
        byte* p = flat.BytePtr;
        sb.Append('[');
        for (int i = 0; i < n; i++)
        {
            if (i > 0)
                sb.Append(", ");
            sb.Append(
                CastKernels.Read(p, t.DType, i).ToString("G6", System.Globalization.CultureInfo.InvariantCulture)
            );
        }
        if (t.NumEl > n)
            sb.Append(", ...");
        sb.Append("], shape=").Append(Shapes.Format(t.Shape)).Append(", dtype=").Append(t.DType.TorchName());
        if (!t.IsCpu)
            sb.Append(", device=").Append(t.Device);
        if (t.GradFn != null)
            sb.Append(", grad_fn=").Append(t.GradFn);
        else if (t.RequiresGrad)
            sb.Append(", requires_grad=True");
        return sb.Append(')').ToString();
    }
}
