using HpcEngine.Autograd;

namespace HpcEngine;

/// <summary>The engine's ops: each checks its operands, computes through their device's backend (the primitives of
/// <see cref="Backends.IBackend"/>, or a composite of other ops) and, when an input needs a gradient, records its
/// backward rule. Users reach them as tensor methods (<c>x.MatMul(w)</c>), operators, and <see cref="F"/>.</summary>
public static partial class Ops
{
    internal static void SameDevice(string op, Tensor a, Tensor b)
    {
        a.CheckAlive();
        b.CheckAlive();
        if (a.Device != b.Device)
            throw new DeviceMismatchException(
                $"{op}: tensors are on different devices ({a.Device} and {b.Device}); move one with .To(device)"
            );
    }

    internal static DTypeMismatchException Unsupported(string op, DType t, string accepted = "float32 or float64") =>
        new($"{op}: dtype {t.TorchName()} is not supported (accepted: {accepted})");

    /// <summary>A handle to <paramref name="x"/> converted to <paramref name="dtype"/>: a new handle to the same
    /// memory when no conversion is needed (safe to dispose either way).</summary>
    internal static Tensor ToDType(Tensor x, DType dtype, bool forceCopy)
    {
        x.CheckAlive();
        if (x.DType == dtype)
            return forceCopy ? x.Clone() : x.Alias();
        var r = Tensor.Empty(x.Shape, dtype, x.Device);
        CopyStrided(x, r); // the backend converts while it copies
        return r;
    }

    /// <summary>Converts to <paramref name="dtype"/>; differentiable between floating types. Always a new
    /// handle.</summary>
    public static Tensor To(Tensor x, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(x);
        var r = ToDType(x, dtype, forceCopy: false);
        if (Recorder.Needs(x) && dtype.IsFloating())
        {
            var from = x.DType;
            Recorder.Record(r, "to", [x], g => [g.DType == from ? g : ToDType(g, from, false)]);
        }
        return r;
    }

    /// <summary>A 0-d tensor for a scalar operand of <paramref name="a"/>: a's dtype when it can hold the value
    /// (floats, or integers with an integral value), else float32, following PyTorch's scalar promotion.</summary>
    internal static Tensor ScalarFor(Tensor a, double s)
    {
        var dtype = a.DType.IsFloating() || Math.Floor(s) == s ? a.DType : DType.Float32;
        return ScalarOn(s, dtype, a.Device);
    }

    /// <summary>A new handle to the same values, passing gradients straight through.</summary>
    public static Tensor Identity(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var r = x.Alias();
        return Recorder.Needs(x) ? Recorder.Record(r, "identity", [x], g => [g]) : r;
    }

    /// <summary>A contiguous copy (or a new handle when already contiguous).</summary>
    public static Tensor Contiguous(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        x.CheckAlive();
        Tensor r;
        if (x.IsContiguous)
            r = x.Alias();
        else
        {
            r = Tensor.Empty(x.Shape, x.DType, x.Device);
            CopyStrided(x, r);
        }
        if (Recorder.Needs(x))
            Recorder.Record(r, "contiguous", [x], g => [g]);
        return r;
    }

    /// <summary>A contiguous copy with its own storage.</summary>
    public static Tensor Clone(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        x.CheckAlive();
        var r = Tensor.Empty(x.Shape, x.DType, x.Device);
        CopyStrided(x, r);
        if (Recorder.Needs(x))
            Recorder.Record(r, "clone", [x], g => [g]);
        return r;
    }

    /// <summary>Copies <paramref name="src"/> (broadcast to dst's shape, converted to dst's dtype) into
    /// <paramref name="dst"/> in place. Not recorded: use it for buffers and parameter updates.</summary>
    public static void CopyInto(Tensor dst, Tensor src)
    {
        ArgumentNullException.ThrowIfNull(dst);
        ArgumentNullException.ThrowIfNull(src);
        if (src.Device != dst.Device)
        {
            // copy_ across devices (a checkpoint loaded into GPU parameters, a scalar into a device tensor): the data
            // is converted to dst's dtype where it is, then moves.
            using var moved = OnDevice(src, dst.Device, dst.DType);
            CopyInto(dst, moved);
            return;
        }
        SameDevice("copy_", dst, src);
        var bshape = Shapes.Broadcast("copy_", dst.Shape, src.Shape);
        if (!bshape.AsSpan().SequenceEqual(dst.Shape))
            throw new ShapeMismatchException(
                $"copy_: source shape {Shapes.Format(src.Shape)} does not broadcast to destination shape "
                    + $"{Shapes.Format(dst.Shape)}"
            );
        using var conv = ToDType(src, dst.DType, false);
        using var expanded = conv.View(
            dst.ShapeArray,
            Shapes.BroadcastStrides(conv.Shape, conv.Strides, dst.Shape),
            conv.Offset
        );
        CopyStrided(expanded, dst);
        dst.BumpVersion();
    }
}
