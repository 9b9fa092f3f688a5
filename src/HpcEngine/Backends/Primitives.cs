namespace HpcEngine.Backends;

// The device-neutral vocabulary of the primitives every backend implements (see IBackend).

/// <summary>Binary arithmetic kinds.</summary>
public enum BinaryOp
{
    /// <summary>x + y.</summary>
    Add,

    /// <summary>x − y.</summary>
    Sub,

    /// <summary>x · y.</summary>
    Mul,

    /// <summary>x / y (integers truncate).</summary>
    Div,

    /// <summary>The larger; NaN if either is NaN.</summary>
    Maximum,

    /// <summary>The smaller; NaN if either is NaN.</summary>
    Minimum,

    /// <summary>xʸ.</summary>
    Pow,

    /// <summary>The angle of the point (y = x, x = y) in (−π, π]: atan2(x, y).</summary>
    Atan2,

    /// <summary>x − trunc(x / y) · y: C's fmod, the sign of the dividend (integers: truncated %).</summary>
    Fmod,

    /// <summary>x − floor(x / y) · y: Python's %, the sign of the divisor.</summary>
    Remainder,

    /// <summary>|x| with the sign bit of y.</summary>
    CopySign,
}

/// <summary>Unary floating-point kinds. Alpha carries the parameter of the parameterised ones (the leaky slope, the
/// power).</summary>
public enum UnaryOp
{
    /// <summary>−x.</summary>
    Neg,

    /// <summary>|x|.</summary>
    Abs,

    /// <summary>eˣ.</summary>
    Exp,

    /// <summary>ln x.</summary>
    Log,

    /// <summary>ln(1 + x).</summary>
    Log1p,

    /// <summary>√x.</summary>
    Sqrt,

    /// <summary>1/√x.</summary>
    Rsqrt,

    /// <summary>tanh x.</summary>
    Tanh,

    /// <summary>1/(1 + e⁻ˣ).</summary>
    Sigmoid,

    /// <summary>max(x, 0).</summary>
    Relu,

    /// <summary>x, or alpha · x below 0.</summary>
    LeakyRelu,

    /// <summary>x · Φ(x) (the exact, erf form).</summary>
    Gelu,

    /// <summary>GELU's tanh approximation.</summary>
    GeluTanh,

    /// <summary>x · sigmoid(x).</summary>
    Silu,

    /// <summary>x to the power alpha.</summary>
    PowScalar,

    /// <summary>−1, 0 or 1.</summary>
    Sign,

    /// <summary>1/x.</summary>
    Reciprocal,

    /// <summary>sin x.</summary>
    Sin,

    /// <summary>cos x.</summary>
    Cos,

    /// <summary>tan x.</summary>
    Tan,

    /// <summary>arcsin x (NaN outside [−1, 1]).</summary>
    Asin,

    /// <summary>arccos x (NaN outside [−1, 1]).</summary>
    Acos,

    /// <summary>arctan x.</summary>
    Atan,

    /// <summary>sinh x.</summary>
    Sinh,

    /// <summary>cosh x.</summary>
    Cosh,

    /// <summary>The error function.</summary>
    Erf,

    /// <summary>eˣ − 1, accurate for small x.</summary>
    Expm1,

    /// <summary>log₂ x.</summary>
    Log2,

    /// <summary>log₁₀ x.</summary>
    Log10,

    /// <summary>The largest integer ≤ x.</summary>
    Floor,

    /// <summary>The smallest integer ≥ x.</summary>
    Ceil,

    /// <summary>The nearest integer, halves to even (PyTorch's and IEEE's rounding).</summary>
    Round,

    /// <summary>x without its fraction (towards 0).</summary>
    Trunc,

    /// <summary>The inverse error function on [−1, 1] (±∞ at ±1, NaN outside).</summary>
    Erfinv,
}

/// <summary>Inclusive scans along one dim (cumsum and its kin).</summary>
public enum ScanOp
{
    /// <summary>Running sum.</summary>
    Sum,

    /// <summary>Running product.</summary>
    Prod,

    /// <summary>Running maximum with the index of the last maximum so far (a NaN sticks, the last NaN's index).</summary>
    Max,

    /// <summary>Running minimum, ties and NaN as <see cref="Max"/>.</summary>
    Min,

    /// <summary>Running log Σ exp, computed stably (all −∞ gives −∞).</summary>
    LogSumExp,
}

/// <summary>Comparisons and logical ops; their results are bool.</summary>
public enum CompareOp
{
    /// <summary>x == y.</summary>
    Eq,

    /// <summary>x != y.</summary>
    Ne,

    /// <summary>x &lt; y.</summary>
    Lt,

    /// <summary>x ≤ y.</summary>
    Le,

    /// <summary>x &gt; y.</summary>
    Gt,

    /// <summary>x ≥ y.</summary>
    Ge,

    /// <summary>Both nonzero.</summary>
    And,

    /// <summary>Either nonzero.</summary>
    Or,

    /// <summary>Exactly one nonzero.</summary>
    Xor,
}

/// <summary>Geometry of a 2-D convolution or pooling window. With <see cref="Ceil"/> (pooling's ceil_mode) the output
/// sizes round up, so the last window may hang off the padded input's end; every kernel clips windows to the input
/// (and average pooling's divisor to the padded input), so they need nothing else.</summary>
public readonly record struct Conv2dGeometry(
    int C,
    int H,
    int W,
    int KH,
    int KW,
    int SH,
    int SW,
    int PH,
    int PW,
    int DH,
    int DW,
    bool Ceil = false
)
{
    /// <summary>Output height: (H + 2·PH − DH·(KH − 1) − 1) / SH + 1, rounded down, or up with <see
    /// cref="Ceil"/>.</summary>
    public int OH => Out(H, KH, SH, PH, DH, Ceil);

    /// <summary>Output width: (W + 2·PW − DW·(KW − 1) − 1) / SW + 1, rounded down, or up with <see
    /// cref="Ceil"/>.</summary>
    public int OW => Out(W, KW, SW, PW, DW, Ceil);

    /// <summary>PyTorch's pooling_output_shape: rounding up never starts a window past the input and its left
    /// padding.</summary>
    private static int Out(int size, int k, int stride, int pad, int dilation, bool ceil)
    {
        int span = size + 2 * pad - dilation * (k - 1) - 1;
        if (span < 0)
            return 0; // the window does not fit the padded input: no output (callers refuse it)
        if (!ceil)
            return span / stride + 1;
        int o = (span + stride - 1) / stride + 1;
        if ((o - 1) * stride >= size + pad)
            o--;
        return o;
    }
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
    /// <summary>Runs the recorded work once more (one launch), on the tensors it was recorded with.</summary>
    void Replay();
}

/// <summary>Memory a backend handed out: opaque to the core, which only keeps it alive (through the reference count
/// of the storage its tensors view) and disposes it when the last tensor viewing it goes.</summary>
public interface IBackendMemory : IDisposable
{
    /// <summary>Size of the block in bytes.</summary>
    long Bytes { get; }
}
