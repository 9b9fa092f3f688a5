#pragma warning disable CS1591 // XML docs owed on some public members of this file (#17: document them, then drop this line)
namespace HpcEngine.Backends;

// The device-neutral vocabulary of the primitives every backend implements (see IBackend).

/// <summary>Binary arithmetic kinds.</summary>
public enum BinaryOp
{
    Add,
    Sub,
    Mul,
    Div,
    Maximum,
    Minimum,
    Pow,
}

/// <summary>Unary floating-point kinds. Alpha carries the parameter of the parameterised ones (the leaky slope, the
/// power).</summary>
public enum UnaryOp
{
    Neg,
    Abs,
    Exp,
    Log,
    Log1p,
    Sqrt,
    Rsqrt,
    Tanh,
    Sigmoid,
    Relu,
    LeakyRelu,
    Gelu,
    GeluTanh,
    Silu,
    PowScalar,
    Sign,
    Reciprocal,
}

/// <summary>Comparisons and logical ops; their results are bool.</summary>
public enum CompareOp
{
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
}

/// <summary>Geometry of a 2-D convolution or pooling window.</summary>
public readonly record struct Conv2dGeometry(int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW)
{
    public int OH => (H + 2 * PH - DH * (KH - 1) - 1) / SH + 1;
    public int OW => (W + 2 * PW - DW * (KW - 1) - 1) / SW + 1;
}

/// <summary>The dense message formats whose encode and decode run on a device (native/kernels/compress.cu).</summary>
public enum MessageFormat
{
    /// <summary>[scale float32][one sign bit per element].</summary>
    Sign,
    /// <summary>[scale float32][one int8 per element, stochastically rounded].</summary>
    Int8,
}

/// <summary>A recorded sequence of device work replayed with one launch (a CUDA graph).</summary>
public interface IDeviceGraph : IDisposable
{
    void Replay();
}

/// <summary>Memory a backend handed out: opaque to the core, which only keeps it alive (through the reference count
/// of the storage its tensors view) and disposes it when the last tensor viewing it goes.</summary>
public interface IBackendMemory : IDisposable
{
    long Bytes { get; }
}
