using System.Text;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

/// <summary>The flag (or environment variable) through which the CLI sets each <see cref="TrainConfig"/> property, so
/// an error the library words in property names (<see cref="ISettingsError"/>) reaches the user in the names they
/// typed.</summary>
internal static class TrainFlags
{
    // Where the flag is not the property's name in kebab case.
    private static readonly Dictionary<string, string> Renamed = new(StringComparer.Ordinal)
    {
        [nameof(TrainConfig.SaveEverySteps)] = "--save-every",
        [nameof(TrainConfig.EvalEverySteps)] = "--eval-every",
        [nameof(TrainConfig.AllowResumeChanges)] = "--allow-resume-change",
        [nameof(TrainConfig.Straggler)] = "HPCENGINE_STRAGGLER",
    };

    /// <summary>The flag of <paramref name="property"/>: <c>BatchSize</c> → <c>--batch-size</c>.</summary>
    public static string Of(string property)
    {
        ArgumentNullException.ThrowIfNull(property);
        return Renamed.TryGetValue(property, out var flag) ? flag : Kebab(property);
    }

    /// <summary><paramref name="property"/> as a flag in kebab case: <c>BatchSize</c> → <c>--batch-size</c>.</summary>
    public static string Kebab(string property)
    {
        ArgumentNullException.ThrowIfNull(property);
        var kebab = new StringBuilder("--");
        for (int i = 0; i < property.Length; i++)
        {
            if (char.IsUpper(property[i]) && i > 0)
                kebab.Append('-');
            kebab.Append(char.ToLowerInvariant(property[i]));
        }
        return kebab.ToString();
    }

    /// <summary>Parses a flag's value; an error names the flag.</summary>
    public static T Parse<T>(string flag, string text, Func<string, T> parse)
    {
        try
        {
            return parse(text);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            throw new ArgumentException($"{flag}: {e.Message}", e);
        }
    }

    /// <summary>An exception's text for the CLI user: settings named by flag.</summary>
    public static string Explain(Exception e) => e is ISettingsError s ? s.Describe(Of) : e.Message;
}
