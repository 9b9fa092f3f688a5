using System.Reflection;
using CommandLine;

namespace HpcEngine.Cli;

/// <summary>What the parser is given and what it says back: torchrun's underscore spellings accepted, and one-line
/// errors with a "did you mean" for a mistyped option or verb.</summary>
internal static class CliArguments
{
    /// <summary>Option names spelled with underscores (<c>--nproc_per_node</c>, torchrun's style) become the hyphen
    /// spelling; nothing after <c>--</c> (the launched program's own arguments) is touched.</summary>
    public static string[] Normalise(string[] args)
    {
        var result = (string[])args.Clone();
        for (int i = 0; i < result.Length; i++)
        {
            var a = result[i];
            if (a == "--")
                break;
            if (!a.StartsWith("--", StringComparison.Ordinal))
                continue;
            int eq = a.IndexOf('=', StringComparison.Ordinal);
            string name = eq < 0 ? a : a[..eq];
            result[i] = name.Replace('_', '-') + (eq < 0 ? "" : a[eq..]);
        }
        return result;
    }

    /// <summary>One line for a parse error.</summary>
    public static string Describe(Error error, string verb, Type current, Type[] verbs)
    {
        string help =
            current == typeof(NullInstance)
                ? "hpcengine --help lists the commands"
                : $"hpcengine {verb} --help lists its options";
        switch (error)
        {
            case UnknownOptionError u:
            {
                var names = OptionNames(current);
                var best = Closest(u.Token, names);
                return $"unknown option '--{u.Token}'{(best != null ? $"; did you mean '--{best}'?" : "")} ({help})";
            }
            case BadVerbSelectedError b:
            {
                var names = verbs.Select(v => v.GetCustomAttribute<VerbAttribute>()!.Name).ToList();
                var best = Closest(b.Token, names);
                return $"unknown command '{b.Token}'{(best != null ? $"; did you mean '{best}'?" : "")} (commands: {string.Join(", ", names)})";
            }
            case MissingRequiredOptionError m:
                return $"missing required {(m.NameInfo.LongName.Length > 0 ? "option --" + m.NameInfo.LongName : "argument")} ({help})";
            case BadFormatConversionError f:
                return $"--{f.NameInfo.LongName}: the value is not valid for this option ({help})";
            case MissingValueOptionError v:
                return $"--{v.NameInfo.LongName} needs a value ({help})";
            case RepeatedOptionError r:
                return $"--{r.NameInfo.LongName} is given more than once";
            case NamedError n:
                return $"--{n.NameInfo.LongName}: {n.Tag} ({help})";
            case TokenError t:
                return $"'{t.Token}': {t.Tag} ({help})";
            default:
                return $"{error.Tag} ({help})";
        }
    }

    private static List<string> OptionNames(Type t) =>
        t.GetProperties()
            .Select(p => p.GetCustomAttribute<OptionAttribute>()?.LongName)
            .Where(n => !string.IsNullOrEmpty(n))
            .Select(n => n!)
            .ToList();

    /// <summary>The candidate within a small edit distance of <paramref name="token"/>, if any.</summary>
    private static string? Closest(string token, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDist = int.MaxValue;
        foreach (var c in candidates)
        {
            int d = Distance(token, c);
            if (c.StartsWith(token, StringComparison.Ordinal) && token.Length >= 3)
                d = Math.Min(d, 1);
            if (d < bestDist)
                (best, bestDist) = (c, d);
        }
        return bestDist <= Math.Max(2, token.Length / 3) ? best : null;
    }

    private static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
            prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
