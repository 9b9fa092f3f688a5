namespace HpcEngine.IO;

/// <summary>Which safetensors rule a file broke.</summary>
public enum SafetensorsCheck
{
    HeaderTooSmall,
    HeaderTooLarge,
    InvalidHeaderLength,
    InvalidUtf8,
    InvalidHeaderStart,
    InvalidJson,
    DuplicateKey,
    InvalidEntry,
    UnknownDType,
    InvalidShape,
    Overflow,
    SizeMismatch,
    InvalidOffsets,
    IncompleteBuffer,
    InvalidMetadata,
    MissingTensor,
}

/// <summary>A safetensors file that cannot be read, naming the file and the check it failed.</summary>
public sealed class SafetensorsException : IOException
{
    public SafetensorsException() { }
    public SafetensorsException(string message) : base(message) { }
    public SafetensorsException(string message, Exception inner) : base(message, inner) { }

    internal SafetensorsException(string path, SafetensorsCheck check, string detail, Exception? inner = null)
        : base($"{path}: not a valid safetensors file ({check}): {detail}", inner)
    {
        Path = path;
        Check = check;
    }

    /// <summary>The file.</summary>
    public string? Path { get; }

    /// <summary>The rule broken.</summary>
    public SafetensorsCheck Check { get; }
}
