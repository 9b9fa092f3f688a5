using System.Text.RegularExpressions;

namespace HpcEngine.Training;

/// <summary>An error whose text names settings of a <see cref="TrainConfig"/>. The library names them by property
/// (<c>Lr</c>); a front end that maps its own names onto the properties — the CLI's flags (<c>--lr</c>) — asks
/// <see cref="Describe"/> for the text in its names.</summary>
public interface ISettingsError
{
    /// <summary>The error's text with each setting named by <paramref name="settingName"/>(property name).</summary>
    string Describe(Func<string, string> settingName);
}

/// <summary>A setting of an options record is invalid, or does not combine with another:
/// <see cref="ArgumentException.ParamName"/> is the property; the text says what is wrong and what to do, naming
/// settings by property unless <see cref="Describe"/> is asked for another wording.</summary>
public partial class SettingsException : ArgumentException, ISettingsError
{
    private readonly string _template;

    /// <param name="property">The setting at fault.</param>
    /// <param name="template">What is wrong, with settings written <c>{PropertyName}</c> (e.g. "{SaveEverySteps} needs
    /// {CheckpointDir}").</param>
    public SettingsException(string property, string template)
        : base(Fill(template, p => p), property) => _template = template;

    /// <summary>The text, settings named by property (no "(Parameter …)" suffix: the text names them).</summary>
    public override string Message => Fill(_template, p => p);

    /// <inheritdoc/>
    public string Describe(Func<string, string> settingName) => Fill(_template, settingName);

    /// <summary>Replaces each <c>{PropertyName}</c> in <paramref name="template"/> with <paramref
    /// name="name"/>'s.</summary>
    internal static string Fill(string template, Func<string, string> name) =>
        Setting().Replace(template, m => name(m.Groups[1].Value));

    [GeneratedRegex(@"\{([A-Z][A-Za-z0-9]*)\}")]
    private static partial Regex Setting();
}

/// <summary>A <see cref="TrainConfig"/> setting is invalid, or does not combine with another (see
/// <see cref="SettingsException"/>).</summary>
public sealed class TrainConfigException(string property, string template) : SettingsException(property, template);
