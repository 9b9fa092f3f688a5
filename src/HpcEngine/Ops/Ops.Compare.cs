using HpcEngine.Autograd;
using HpcEngine.Backends;

namespace HpcEngine;

public static partial class Ops
{
    /// <summary>a == b elementwise, broadcasting: a bool tensor.</summary>
    public static Tensor Eq(Tensor a, Tensor b) => Compare(CompareOp.Eq, "eq", a, b);

    /// <summary>a != b elementwise, broadcasting: a bool tensor.</summary>
    public static Tensor Ne(Tensor a, Tensor b) => Compare(CompareOp.Ne, "ne", a, b);

    /// <summary>a &lt; b elementwise, broadcasting: a bool tensor.</summary>
    public static Tensor Lt(Tensor a, Tensor b) => Compare(CompareOp.Lt, "lt", a, b);

    /// <summary>a ≤ b elementwise, broadcasting: a bool tensor.</summary>
    public static Tensor Le(Tensor a, Tensor b) => Compare(CompareOp.Le, "le", a, b);

    /// <summary>a &gt; b elementwise, broadcasting: a bool tensor.</summary>
    public static Tensor Gt(Tensor a, Tensor b) => Compare(CompareOp.Gt, "gt", a, b);

    /// <summary>a ≥ b elementwise, broadcasting: a bool tensor.</summary>
    public static Tensor Ge(Tensor a, Tensor b) => Compare(CompareOp.Ge, "ge", a, b);

    /// <summary>Both nonzero, elementwise with broadcasting: a bool tensor.</summary>
    public static Tensor LogicalAnd(Tensor a, Tensor b) => Compare(CompareOp.And, "logical_and", a, b);

    /// <summary>Either nonzero, elementwise with broadcasting: a bool tensor.</summary>
    public static Tensor LogicalOr(Tensor a, Tensor b) => Compare(CompareOp.Or, "logical_or", a, b);

    /// <summary>Exactly one nonzero, elementwise with broadcasting: a bool tensor.</summary>
    public static Tensor LogicalXor(Tensor a, Tensor b) => Compare(CompareOp.Xor, "logical_xor", a, b);

    /// <summary>a == s elementwise: a bool tensor.</summary>
    public static Tensor EqScalar(Tensor a, double s)
    {
        using var t = Tensor.Scalar(s, DType.Float64);
        return Eq(a, t);
    }

    /// <summary>a &gt; s elementwise: a bool tensor.</summary>
    public static Tensor GtScalar(Tensor a, double s)
    {
        using var t = Tensor.Scalar(s, DType.Float64);
        return Gt(a, t);
    }

    /// <summary>a ≥ s elementwise: a bool tensor.</summary>
    public static Tensor GeScalar(Tensor a, double s)
    {
        using var t = Tensor.Scalar(s, DType.Float64);
        return Ge(a, t);
    }

    /// <summary>a &lt; s elementwise: a bool tensor.</summary>
    public static Tensor LtScalar(Tensor a, double s)
    {
        using var t = Tensor.Scalar(s, DType.Float64);
        return Lt(a, t);
    }

    /// <summary>a ≤ s elementwise: a bool tensor.</summary>
    public static Tensor LeScalar(Tensor a, double s)
    {
        using var t = Tensor.Scalar(s, DType.Float64);
        return Le(a, t);
    }

    /// <summary>Logical not: true where x is zero.</summary>
    public static Tensor LogicalNot(Tensor x)
    {
        using var z = Tensor.Scalar(0, DType.Float64);
        return Eq(x, z);
    }

    private static Tensor Compare(CompareOp op, string name, Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var device = DeviceOf(name, a, b);
        var shape = Shapes.Broadcast(name, a.Shape, b.Shape);
        // Compare in the wider of the two types; int64 vs float64 compare in float64 like NumPy.
        var compute = OperandType(a, b, device).ComputeType();
        if (compute is DType.Bool or DType.UInt8)
            compute = DType.Int32;
        using var ac = OnDevice(a, device, compute);
        using var bc = OnDevice(b, device, compute);
        using var ae = Expanded(ac, shape);
        using var be = Expanded(bc, shape);
        var r = Tensor.Empty(shape, DType.Bool, device);
        r.Backend.Compare(op, ae, be, r);
        return r;
    }

    /// <summary>Elementwise choice: <paramref name="a"/> where <paramref name="condition"/> is true, else
    /// <paramref name="b"/>; all three broadcast.</summary>
    public static Tensor Where(Tensor condition, Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(condition);
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (condition.DType is not (DType.Bool or DType.UInt8))
            throw new DTypeMismatchException($"where: the condition must be bool, got {condition.DType.TorchName()}");
        var shape = Shapes.Broadcast("where", condition.Shape, Shapes.Broadcast("where", a.Shape, b.Shape));
        var device = DeviceOf("where", condition, a, b);
        var dtype = OperandType(a, b, device);
        using var cc = OnDevice(condition, device, condition.DType);
        using var ac = OnDevice(a, device, dtype);
        using var bc = OnDevice(b, device, dtype);
        using var ce = Expanded(cc, shape);
        using var ae = Expanded(ac, shape);
        using var be = Expanded(bc, shape);
        var r = Tensor.Empty(shape, dtype, device);
        r.Backend.Where(ce, ae, be, r);
        if (!Recorder.Needs(a, b))
            return r;
        int[] sa = a.ShapeArray,
            sb = b.ShapeArray;
        bool ga = a.NeedsGrad,
            gb = b.NeedsGrad;
        return Recorder.Record(r, "where", [a, b], [condition], (g, s) =>
        {
            using var zero = Tensor.Zeros([], g.DType);
            Tensor? da = ga ? SumToOwned(Where(s[0], g, zero), sa) : null;
            Tensor? db = gb ? SumToOwned(Where(s[0], zero, g), sb) : null;
            return [da, db];
        });
    }

    /// <summary>x with <paramref name="value"/> where <paramref name="mask"/> is true.</summary>
    public static Tensor MaskedFill(Tensor x, Tensor mask, double value)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var v = Tensor.Scalar(value, x.DType);
        return Where(mask, v, x);
    }
}
