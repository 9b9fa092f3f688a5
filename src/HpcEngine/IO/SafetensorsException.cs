#pragma warning disable CS1591 // XML docs owed on some public members of this file (#17: document them, then drop this line)
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
    /// <summary>An exception with the default message.</summary>
    public SafetensorsException() { }
    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public SafetensorsException(string message) : base(message) { }
    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
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
