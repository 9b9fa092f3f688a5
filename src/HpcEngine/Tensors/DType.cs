namespace HpcEngine;

/// <summary>Element types a tensor can hold. Reduced-precision floats (bf16, fp16) are storage formats:
/// ops compute on them in float32 and round back.</summary>
public enum DType
{
    /// <summary>32-bit IEEE float (torch.float32).</summary>
    Float32,

    /// <summary>64-bit IEEE float (torch.float64).</summary>
    Float64,

    /// <summary>bfloat16: float32's exponent, 8 mantissa bits (torch.bfloat16).</summary>
    BFloat16,

    /// <summary>IEEE half (torch.float16).</summary>
    Float16,

    /// <summary>32-bit signed integer.</summary>
    Int32,

    /// <summary>64-bit signed integer (labels, indices).</summary>
    Int64,

    /// <summary>8-bit unsigned integer (raw image bytes).</summary>
    UInt8,

    /// <summary>One byte per element, 0 or 1 (comparison results).</summary>
    Bool,
}

/// <summary>Facts about each <see cref="DType"/>.</summary>
public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int SizeOf(this DType t) =>
        t switch
        {
            DType.Float32 or DType.Int32 => 4,
            DType.Float64 or DType.Int64 => 8,
            DType.BFloat16 or DType.Float16 => 2,
            DType.UInt8 or DType.Bool => 1,
            _ => throw new ArgumentOutOfRangeException(nameof(t)),
        };

    /// <summary>True for the four floating-point types.</summary>
    public static bool IsFloating(this DType t) =>
        t is DType.Float32 or DType.Float64 or DType.BFloat16 or DType.Float16;

    /// <summary>The dtype name PyTorch uses (torch.float32 ...), used in error messages.</summary>
    public static string TorchName(this DType t) =>
        t switch
        {
            DType.Float32 => "float32",
            DType.Float64 => "float64",
            DType.BFloat16 => "bfloat16",
            DType.Float16 => "float16",
            DType.Int32 => "int32",
            DType.Int64 => "int64",
            DType.UInt8 => "uint8",
            DType.Bool => "bool",
            _ => t.ToString(),
        };

    /// <summary>The dtype code of the safetensors format.</summary>
    public static string SafetensorsName(this DType t) =>
        t switch
        {
            DType.Float32 => "F32",
            DType.Float64 => "F64",
            DType.BFloat16 => "BF16",
            DType.Float16 => "F16",
            DType.Int32 => "I32",
            DType.Int64 => "I64",
            DType.UInt8 => "U8",
            DType.Bool => "BOOL",
            _ => throw new ArgumentOutOfRangeException(nameof(t)),
        };

    /// <summary>Parses a safetensors dtype code; null when the engine does not hold that type.</summary>
    public static DType? FromSafetensorsName(string name) =>
        name switch
        {
            "F32" => DType.Float32,
            "F64" => DType.Float64,
            "BF16" => DType.BFloat16,
            "F16" => DType.Float16,
            "I32" => DType.Int32,
            "I64" => DType.Int64,
            "U8" => DType.UInt8,
            "BOOL" => DType.Bool,
            _ => null,
        };

    /// <summary>The dtype in which ops on <paramref name="t"/> compute: fp32 for the reduced floats.</summary>
    public static DType ComputeType(this DType t) => t is DType.BFloat16 or DType.Float16 ? DType.Float32 : t;

    /// <summary>Type promotion for binary ops, following PyTorch's category order (bool &lt; int &lt; float).</summary>
    public static DType Promote(DType a, DType b)
    {
        if (a == b)
            return a;
        static int Rank(DType t) =>
            t switch
            {
                DType.Bool => 0,
                DType.UInt8 => 1,
                DType.Int32 => 2,
                DType.Int64 => 3,
                DType.BFloat16 => 4,
                DType.Float16 => 4,
                DType.Float32 => 5,
                DType.Float64 => 6,
                _ => 0,
            };
        if ((a, b) is (DType.BFloat16, DType.Float16) or (DType.Float16, DType.BFloat16))
            return DType.Float32;
        return Rank(a) >= Rank(b) ? a : b;
    }
}
