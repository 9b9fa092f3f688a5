namespace HpcEngine.IO;

/// <summary>Which safetensors rule a file broke.</summary>
public enum SafetensorsCheck
{
    /// <summary>The file is shorter than its 8-byte header length.</summary>
    HeaderTooSmall,

    /// <summary>The declared header exceeds the 100 MB limit.</summary>
    HeaderTooLarge,

    /// <summary>The header length points past the end of the file.</summary>
    InvalidHeaderLength,

    /// <summary>The header is not UTF-8.</summary>
    InvalidUtf8,

    /// <summary>The header does not start with '{'.</summary>
    InvalidHeaderStart,

    /// <summary>The header is not valid JSON.</summary>
    InvalidJson,

    /// <summary>A tensor name appears twice.</summary>
    DuplicateKey,

    /// <summary>A tensor entry lacks dtype, shape or data_offsets, or has the wrong types.</summary>
    InvalidEntry,

    /// <summary>A dtype the reader does not know.</summary>
    UnknownDType,

    /// <summary>A negative or non-integer dim.</summary>
    InvalidShape,

    /// <summary>A shape whose byte size overflows.</summary>
    Overflow,

    /// <summary>A tensor's offsets do not span its shape × element size.</summary>
    SizeMismatch,

    /// <summary>Offsets out of order, overlapping or leaving gaps.</summary>
    InvalidOffsets,

    /// <summary>The data section is shorter or longer than the offsets say.</summary>
    IncompleteBuffer,

    /// <summary>__metadata__ is not a string-to-string map.</summary>
    InvalidMetadata,

    /// <summary>A tensor the caller asked for is not in the file.</summary>
    MissingTensor,
}

/// <summary>A safetensors file that cannot be read, naming the file and the check it failed.</summary>
public sealed class SafetensorsException : IOException
{
    /// <summary>An exception with the default message.</summary>
    public SafetensorsException() { }

    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public SafetensorsException(string message)
        : base(message) { }

    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public SafetensorsException(string message, Exception inner)
        : base(message, inner) { }

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
