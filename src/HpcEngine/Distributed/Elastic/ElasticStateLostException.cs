namespace HpcEngine.Distributed.Elastic;

/// <summary>An elastic job lost state that no survivor holds (a rank and the holder of its optimizer shard's copy at
/// once, or survivors more than an epoch apart): it cannot go on in memory, only from its last checkpoint.
/// <c>hpcengine train</c> exits with <see cref="ExitCode"/>, which <c>hpcengine launch --elastic --max-restarts K</c>
/// answers by restarting every worker (a fresh job at full size, resuming with <c>--resume-if-exists</c>).</summary>
public sealed class ElasticStateLostException : Exception
{
    /// <summary>The exit code (EX_TEMPFAIL: try again) that tells the launcher to fall back to the checkpoint.</summary>
    public const int ExitCode = 75;

    /// <summary>An error with no message.</summary>
    public ElasticStateLostException() { }

    /// <summary>An error with <paramref name="message"/>.</summary>
    public ElasticStateLostException(string message)
        : base(message) { }

    /// <summary>An error with <paramref name="message"/> caused by <paramref name="inner"/>.</summary>
    public ElasticStateLostException(string message, Exception inner)
        : base(message, inner) { }
}
