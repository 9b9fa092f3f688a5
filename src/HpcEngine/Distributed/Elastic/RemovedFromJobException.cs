namespace HpcEngine.Distributed.Elastic;

/// <summary>This process is no longer a member of its elastic job: the others formed a generation without it (it was
/// frozen, cut off, or arrived after the quorum closed). It must stop; nothing it sends reaches the new generation.</summary>
public sealed class RemovedFromJobException : Exception
{
    /// <summary>An error with no message.</summary>
    public RemovedFromJobException() { }

    /// <summary>An error with <paramref name="message"/>.</summary>
    public RemovedFromJobException(string message)
        : base(message) { }

    /// <summary>An error with <paramref name="message"/> caused by <paramref name="inner"/>.</summary>
    public RemovedFromJobException(string message, Exception inner)
        : base(message, inner) { }
}
