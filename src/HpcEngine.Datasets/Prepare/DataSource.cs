using System.Security.Cryptography;
using System.Text;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>The kinds of raw data a preparation reads.</summary>
public enum SourceKind
{
    /// <summary>MNIST-format IDX files (Fashion-MNIST, MNIST), gzipped or not.</summary>
    Idx,

    /// <summary>A class-per-folder tree of PNG/JPEG images.</summary>
    Images,

    /// <summary>A CSV table with a header row.</summary>
    Csv,
}

/// <summary>A source as the user names it, <c>idx:DIR</c>, <c>images:DIR</c> or <c>csv:FILE</c>, and the files it
/// consists of (sorted by relative path, so their hash does not depend on the directory's listing order).</summary>
public sealed record DataSource(SourceKind Kind, string Path)
{
    /// <summary>Image file extensions an image tree's folders are searched for.</summary>
    public static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg"];

    /// <summary>Parses "kind:path"; an unknown kind or a path that does not exist is an error saying what is
    /// expected.</summary>
    public static DataSource Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        string kind = colon > 0 ? text[..colon] : "",
            path = colon > 0 ? text[(colon + 1)..] : text;
        var k = kind switch
        {
            "idx" => SourceKind.Idx,
            "images" => SourceKind.Images,
            "csv" => SourceKind.Csv,
            _ => throw new DatasetException(
                text,
                DatasetProblem.BadSource,
                "a source is idx:DIR (IDX files), images:DIR (a folder per class) or csv:FILE (a table with a header)"
            ),
        };
        bool exists = k == SourceKind.Csv ? File.Exists(path) : Directory.Exists(path);
        if (!exists)
            throw new DatasetException(
                path,
                DatasetProblem.BadSource,
                k == SourceKind.Csv ? "CSV file not found" : "directory not found"
            );
        return new DataSource(k, System.IO.Path.GetFullPath(path));
    }

    /// <summary>The files of the source, as (relative name, full path), in ordinal order of the name.</summary>
    public IReadOnlyList<(string Name, string FullPath)> Files()
    {
        if (Kind == SourceKind.Csv)
            return [(System.IO.Path.GetFileName(Path), Path)];
        var files = Directory.EnumerateFiles(Path, "*", SearchOption.AllDirectories);
        if (Kind == SourceKind.Idx)
            files = files.Where(f =>
                Data.FashionMnist.Files.Any(n =>
                    f.EndsWith(n, StringComparison.Ordinal) || f.EndsWith(n[..^3], StringComparison.Ordinal)
                )
                && System.IO.Path.GetDirectoryName(f) == Path
            );
        else
            files = files.Where(f => ImageExtensions.Contains(System.IO.Path.GetExtension(f).ToLowerInvariant()));
        return files
            .Select(f => (System.IO.Path.GetRelativePath(Path, f).Replace('\\', '/'), f))
            .OrderBy(f => f.Item1, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>SHA-256 over each file's relative name, length and bytes, lowercase hex: the cache key's part that
    /// changes whenever an input does.</summary>
    public static string ContentHash(IReadOnlyList<(string Name, string FullPath)> files)
    {
        ArgumentNullException.ThrowIfNull(files);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        foreach (var (name, full) in files)
        {
            using var f = File.OpenRead(full);
            sha.AppendData(Encoding.UTF8.GetBytes($"{name}\n{f.Length}\n"));
            int n;
            while ((n = f.Read(buffer)) > 0)
                sha.AppendData(buffer, 0, n);
        }
        return Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant();
    }

    /// <summary>The source as users write it.</summary>
    public override string ToString() => $"{Kind.ToString().ToLowerInvariant()}:{Path}";
}
