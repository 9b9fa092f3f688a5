using System.Text;
using HpcEngine.Data.Sharded;

namespace HpcEngine.Datasets.Prepare;

/// <summary>A CSV table read whole: the header and each row's fields with the line it started on (RFC 4180: comma
/// separated, double-quoted fields may hold commas, quotes as "" and line breaks). A row with another number of fields
/// than the header is an error naming the file and line.</summary>
public sealed class CsvTable
{
    /// <summary>The column names.</summary>
    public IReadOnlyList<string> Header { get; }

    /// <summary>The rows (without the header).</summary>
    public IReadOnlyList<string[]> Rows { get; }

    /// <summary>The 1-based line each row starts on.</summary>
    public IReadOnlyList<int> Lines { get; }

    /// <summary>The file's name for errors.</summary>
    public string Name { get; }

    private CsvTable(string name, string[] header, List<string[]> rows, List<int> lines)
    {
        Name = name;
        Header = header;
        Rows = rows;
        Lines = lines;
    }

    /// <summary>Reads <paramref name="path"/>; <paramref name="skipBadRows"/> drops rows with a wrong field count
    /// (each reported to <paramref name="skipped"/>) instead of failing.</summary>
    public static CsvTable Read(string path, bool skipBadRows = false, Action<string, string>? skipped = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Parse(File.ReadAllText(path), path, skipBadRows, skipped);
    }

    /// <summary>Parses CSV text.</summary>
    public static CsvTable Parse(
        string text,
        string name,
        bool skipBadRows = false,
        Action<string, string>? skipped = null
    )
    {
        ArgumentNullException.ThrowIfNull(text);
        var records = Records(text, name).ToList();
        if (records.Count == 0 || records[0].Fields.Length == 0 || records[0].Fields.All(string.IsNullOrWhiteSpace))
            throw new DatasetException(name, DatasetProblem.BadRow, "the file is empty: a header row is needed");
        var header = records[0].Fields.Select(h => h.Trim()).ToArray();
        var dup = header.GroupBy(h => h).FirstOrDefault(g => g.Count() > 1);
        if (dup != null)
            throw new DatasetException(
                $"{name}:1",
                DatasetProblem.BadRow,
                $"the header names column '{dup.Key}' twice"
            );
        var rows = new List<string[]>();
        var lines = new List<int>();
        foreach (var (line, fields) in records.Skip(1))
        {
            if (fields.Length == 1 && fields[0].Length == 0)
                continue; // a blank line
            if (fields.Length != header.Length)
            {
                string why = $"{fields.Length} fields where the header has {header.Length}";
                if (!skipBadRows)
                    throw new DatasetException(
                        $"{name}:{line}",
                        DatasetProblem.BadRow,
                        why + " (fix the row, or prepare with on_error skip to drop such rows)"
                    );
                skipped?.Invoke($"{name}:{line}", why);
                continue;
            }
            rows.Add(fields);
            lines.Add(line);
        }
        return new CsvTable(name, header, rows, lines);
    }

    private static IEnumerable<(int Line, string[] Fields)> Records(string text, string name)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        int line = 1,
            start = 1;
        bool quoted = false,
            any = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                    quoted = false;
                else
                {
                    if (c == '\n')
                        line++;
                    field.Append(c);
                }
                continue;
            }
            any = true;
            switch (c)
            {
                case '"' when field.Length == 0:
                    quoted = true;
                    break;
                case ',':
                    fields.Add(field.ToString());
                    field.Clear();
                    break;
                case '\r':
                    break;
                case '\n':
                    fields.Add(field.ToString());
                    field.Clear();
                    yield return (start, fields.ToArray());
                    fields.Clear();
                    any = false;
                    start = ++line;
                    break;
                default:
                    field.Append(c);
                    break;
            }
        }
        if (quoted)
            throw new DatasetException($"{name}:{start}", DatasetProblem.BadRow, "a quoted field is not closed");
        if (any || field.Length > 0 || fields.Count > 0)
        {
            fields.Add(field.ToString());
            yield return (start, fields.ToArray());
        }
    }
}
