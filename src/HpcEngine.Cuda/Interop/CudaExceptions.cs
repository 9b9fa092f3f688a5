#pragma warning disable CS1591 // XML docs still owed on some public members here (#17)
namespace HpcEngine.Cuda.Interop;

/// <summary>A CUDA library is not installed where the resolver looked.</summary>
public sealed class CudaLibraryNotFoundException : Exception
{
    public CudaLibraryNotFoundException() { }

    public CudaLibraryNotFoundException(string message)
        : base(message) { }

    public CudaLibraryNotFoundException(string message, Exception inner)
        : base(message, inner) { }

    public CudaLibraryNotFoundException(string library, IReadOnlyList<string> tried)
        : base(
            $"the CUDA library '{library}' was not found (tried {string.Join(", ", tried)}); install it or point HPCENGINE_CUDA_PATH at the directory that holds it"
        )
    {
        Library = library;
        Tried = tried;
    }

    public string? Library { get; }
    public IReadOnlyList<string> Tried { get; } = [];
}

/// <summary>A driver-API call failed: the status code, the driver's own name and description of it, and the
/// call.</summary>
public sealed class CudaException : Exception
{
    public CudaException() { }

    public CudaException(string message)
        : base(message) { }

    public CudaException(string message, Exception inner)
        : base(message, inner) { }

    public CudaException(int code, string name, string description, string call)
        : base($"{call} failed: {name} ({code}): {description}")
    {
        (Code, ErrorName, Call) = (code, name, call);
    }

    public int Code { get; }
    public string? ErrorName { get; }
    public string? Call { get; }
}

/// <summary>An NVRTC call or a kernel compilation failed; <see cref="Log"/> holds the compiler's log.</summary>
public sealed class NvrtcException : Exception
{
    public NvrtcException() { }

    public NvrtcException(string message)
        : base(message) { }

    public NvrtcException(string message, Exception inner)
        : base(message, inner) { }

    public NvrtcException(int code, string description, string call, string? log = null)
        : base($"{call} failed: {description} ({code}){(string.IsNullOrWhiteSpace(log) ? "" : ":\n" + log.Trim())}")
    {
        (Code, Call, Log) = (code, call, log);
    }

    public int Code { get; }
    public string? Call { get; }
    public string? Log { get; }
}

/// <summary>A cuBLAS call failed.</summary>
public sealed class CublasException : Exception
{
    public CublasException() { }

    public CublasException(string message)
        : base(message) { }

    public CublasException(string message, Exception inner)
        : base(message, inner) { }

    public CublasException(int code, string description, string call)
        : base($"{call} failed: {description} ({code})")
    {
        (Code, Call) = (code, call);
    }

    public int Code { get; }
    public string? Call { get; }
}

/// <summary>An NCCL call failed, or a communicator reported an asynchronous error.</summary>
public sealed class NcclException : Exception
{
    public NcclException() { }

    public NcclException(string message)
        : base(message) { }

    public NcclException(string message, Exception inner)
        : base(message, inner) { }

    public NcclException(int code, string description, string call)
        : base($"{call} failed: {description} ({code})")
    {
        (Code, Call) = (code, call);
    }

    public int Code { get; }
    public string? Call { get; }
}
