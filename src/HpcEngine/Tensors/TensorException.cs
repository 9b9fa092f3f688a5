namespace HpcEngine;

/// <summary>Base of the engine's typed errors about tensor arguments.</summary>
public class TensorException : Exception
{
    /// <summary>An exception with the default message.</summary>
    public TensorException() { }

    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public TensorException(string message)
        : base(message) { }

    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public TensorException(string message, Exception inner)
        : base(message, inner) { }
}

/// <summary>Shapes that break an op's rule (broadcasting, inner dimensions, rank ...). The message names the op,
/// the shapes and the rule.</summary>
public sealed class ShapeMismatchException : TensorException
{
    /// <summary>An exception with the default message.</summary>
    public ShapeMismatchException() { }

    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public ShapeMismatchException(string message)
        : base(message) { }

    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public ShapeMismatchException(string message, Exception inner)
        : base(message, inner) { }

    internal static ShapeMismatchException For(string op, string rule, params Tensor[] tensors) =>
        new($"{op}: {rule} (got {string.Join(", ", tensors.Select(t => Shapes.Format(t.Shape)))})");
}

/// <summary>A dtype an op does not accept, or two dtypes that must agree and do not.</summary>
public sealed class DTypeMismatchException : TensorException
{
    /// <summary>An exception with the default message.</summary>
    public DTypeMismatchException() { }

    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public DTypeMismatchException(string message)
        : base(message) { }

    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public DTypeMismatchException(string message, Exception inner)
        : base(message, inner) { }
}

/// <summary>Tensors on different devices given to one op, or an op the tensor's device cannot run.</summary>
public sealed class DeviceMismatchException : TensorException
{
    /// <summary>An exception with the default message.</summary>
    public DeviceMismatchException() { }

    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public DeviceMismatchException(string message)
        : base(message) { }

    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public DeviceMismatchException(string message, Exception inner)
        : base(message, inner) { }
}

/// <summary>A matrix an op must factor that cannot be: singular where an inverse or solve needs it invertible, or not
/// positive definite for a Cholesky factorisation (PyTorch's torch.linalg.LinAlgError). The message names the op,
/// the matrix of the batch and the order at which the factorisation stopped.</summary>
public sealed class LinAlgException : TensorException
{
    /// <summary>An exception with the default message.</summary>
    public LinAlgException() { }

    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public LinAlgException(string message)
        : base(message) { }

    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public LinAlgException(string message, Exception inner)
        : base(message, inner) { }
}
