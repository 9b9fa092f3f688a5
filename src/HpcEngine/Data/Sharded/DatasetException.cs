namespace HpcEngine.Data.Sharded;

/// <summary>What was wrong with a dataset, its source or its spec.</summary>
public enum DatasetProblem
{
    /// <summary>The directory has no manifest.json: it was never prepared, or its preparation did not finish.</summary>
    MissingManifest,

    /// <summary>The manifest is not valid JSON or lacks a field.</summary>
    BadManifest,

    /// <summary>The manifest's format version is newer than this build reads.</summary>
    FutureVersion,

    /// <summary>A shard's bytes no longer match the SHA-256 the manifest recorded.</summary>
    ChecksumMismatch,

    /// <summary>A shard's header or size disagrees with the manifest.</summary>
    CorruptShard,

    /// <summary>The samples' shape does not fit the model or the input.</summary>
    ShapeMismatch,

    /// <summary>An image file cannot be decoded.</summary>
    CorruptImage,

    /// <summary>A CSV row cannot be parsed (field count, number).</summary>
    BadRow,

    /// <summary>A column the spec or flags name does not exist.</summary>
    NoSuchColumn,

    /// <summary>A class folder holds no images.</summary>
    EmptyClass,

    /// <summary>No sample is left (after filtering, or in a split).</summary>
    NoSamples,

    /// <summary>The pipeline spec is invalid.</summary>
    BadSpec,

    /// <summary>The source does not exist or is not of the kind named.</summary>
    BadSource,
}

/// <summary>A dataset, source or spec that cannot be used: it names the file (and line, column or shard) and says what
/// to do. Nothing half-written is left behind by the operation that throws it.</summary>
public sealed class DatasetException : IOException
{
    /// <summary>An exception with the default message.</summary>
    public DatasetException() { }

    /// <summary>An exception saying <paramref name="message"/>.</summary>
    public DatasetException(string message)
        : base(message) { }

    /// <summary>An exception saying <paramref name="message"/>, caused by <paramref name="inner"/>.</summary>
    public DatasetException(string message, Exception inner)
        : base(message, inner) { }

    /// <summary><paramref name="where"/> (a file, "file:line", a shard) has <paramref name="problem"/>;
    /// <paramref name="detail"/> says what and what to do.</summary>
    public DatasetException(string where, DatasetProblem problem, string detail, Exception? inner = null)
        : base($"{where}: {detail}", inner)
    {
        Where = where;
        Problem = problem;
        Detail = detail;
    }

    /// <summary>What was wrong, without the place.</summary>
    public string Detail { get; } = "";

    /// <summary>The file, line or shard at fault.</summary>
    public string? Where { get; }

    /// <summary>What kind of problem it is.</summary>
    public DatasetProblem Problem { get; }
}
