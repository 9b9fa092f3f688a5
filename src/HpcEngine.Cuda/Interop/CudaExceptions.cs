namespace HpcEngine.Cuda.Interop;

/// <summary>A CUDA library is not installed where the resolver looked.</summary>
public sealed class CudaLibraryNotFoundException : Exception
{
    /// <summary>An error with no message.</summary>
    public CudaLibraryNotFoundException() { }

    /// <summary>An error with <paramref name="message"/>.</summary>
    public CudaLibraryNotFoundException(string message)
        : base(message) { }

    /// <summary>An error with <paramref name="message"/> caused by <paramref name="inner"/>.</summary>
    public CudaLibraryNotFoundException(string message, Exception inner)
        : base(message, inner) { }

    /// <summary><paramref name="library"/> was not found at any of the paths in <paramref name="tried"/>.</summary>
    public CudaLibraryNotFoundException(string library, IReadOnlyList<string> tried)
        : base(
            $"the CUDA library '{library}' was not found (tried {string.Join(", ", tried)}); install it or point HPCENGINE_CUDA_PATH at the directory that holds it"
        )
    {
        Library = library;
        Tried = tried;
    }

    /// <summary>The library's name (libcuda, libnvrtc, libcublas, libnccl).</summary>
    public string? Library { get; }

    /// <summary>Every file name and path the resolver tried, in order.</summary>
    public IReadOnlyList<string> Tried { get; } = [];
}

/// <summary>A driver-API call failed: the status code, the driver's own name and description of it, and the
/// call.</summary>
public sealed class CudaException : Exception
{
    /// <summary>An error with no message.</summary>
    public CudaException() { }

    /// <summary>An error with <paramref name="message"/>.</summary>
    public CudaException(string message)
        : base(message) { }

    /// <summary>An error with <paramref name="message"/> caused by <paramref name="inner"/>.</summary>
    public CudaException(string message, Exception inner)
        : base(message, inner) { }

    /// <summary>The driver call <paramref name="call"/> returned CUresult <paramref name="code"/> (<paramref
    /// name="name"/>: <paramref name="description"/>).</summary>
    public CudaException(int code, string name, string description, string call)
        : base($"{call} failed: {name} ({code}): {description}")
    {
        (Code, ErrorName, Call) = (code, name, call);
    }

    /// <summary>The CUresult code.</summary>
    public int Code { get; }

    /// <summary>The CUresult's name (CUDA_ERROR_...).</summary>
    public string? ErrorName { get; }

    /// <summary>The driver call that failed.</summary>
    public string? Call { get; }
}

/// <summary>An NVRTC call or a kernel compilation failed; <see cref="Log"/> holds the compiler's log.</summary>
public sealed class NvrtcException : Exception
{
    /// <summary>An error with no message.</summary>
    public NvrtcException() { }

    /// <summary>An error with <paramref name="message"/>.</summary>
    public NvrtcException(string message)
        : base(message) { }

    /// <summary>An error with <paramref name="message"/> caused by <paramref name="inner"/>.</summary>
    public NvrtcException(string message, Exception inner)
        : base(message, inner) { }

    /// <summary>The NVRTC call <paramref name="call"/> returned <paramref name="code"/>; <paramref name="log"/> is the
    /// compiler's log when a compile failed.</summary>
    public NvrtcException(int code, string description, string call, string? log = null)
        : base($"{call} failed: {description} ({code}){(string.IsNullOrWhiteSpace(log) ? "" : ":\n" + log.Trim())}")
    {
        (Code, Call, Log) = (code, call, log);
    }

    /// <summary>The nvrtcResult code.</summary>
    public int Code { get; }

    /// <summary>The NVRTC call that failed.</summary>
    public string? Call { get; }

    /// <summary>The compilation log, when a kernel failed to compile.</summary>
    public string? Log { get; }
}

/// <summary>A cuBLAS call failed.</summary>
public sealed class CublasException : Exception
{
    /// <summary>An error with no message.</summary>
    public CublasException() { }

    /// <summary>An error with <paramref name="message"/>.</summary>
    public CublasException(string message)
        : base(message) { }

    /// <summary>An error with <paramref name="message"/> caused by <paramref name="inner"/>.</summary>
    public CublasException(string message, Exception inner)
        : base(message, inner) { }

    /// <summary>The cuBLAS call <paramref name="call"/> returned status <paramref name="code"/> (<paramref
    /// name="description"/>).</summary>
    public CublasException(int code, string description, string call)
        : base($"{call} failed: {description} ({code})")
    {
        (Code, Call) = (code, call);
    }

    /// <summary>The cublasStatus_t code.</summary>
    public int Code { get; }

    /// <summary>The cuBLAS call that failed.</summary>
    public string? Call { get; }
}

/// <summary>An NCCL call failed, or a communicator reported an asynchronous error.</summary>
public sealed class NcclException : Exception
{
    /// <summary>An error with no message.</summary>
    public NcclException() { }

    /// <summary>An error with <paramref name="message"/>.</summary>
    public NcclException(string message)
        : base(message) { }

    /// <summary>An error with <paramref name="message"/> caused by <paramref name="inner"/>.</summary>
    public NcclException(string message, Exception inner)
        : base(message, inner) { }

    /// <summary>The NCCL call <paramref name="call"/> returned <paramref name="code"/> (<paramref
    /// name="description"/>).</summary>
    public NcclException(int code, string description, string call)
        : base($"{call} failed: {description} ({code})")
    {
        (Code, Call) = (code, call);
    }

    /// <summary>The ncclResult_t code.</summary>
    public int Code { get; }

    /// <summary>The NCCL call that failed.</summary>
    public string? Call { get; }
}
