using System.Text.Json;
using System.Text.Json.Serialization;

namespace HpcEngine.Training;

/// <summary>JSON output for results: a diverged run's NaN or infinite numbers are written as null (JSON has no NaN),
/// so the file stays valid for every reader and the run is still recorded.</summary>
internal static class JsonNumbers
{
    /// <summary>Indented output with non-finite numbers as null.</summary>
    public static JsonSerializerOptions Options { get; } =
        new() { WriteIndented = true, Converters = { new FiniteOrNullConverter() } };
}

/// <summary>The engine's results-JSON convention for tools that write their own result objects (benchmarks, reports):
/// indented, and a NaN or infinite double written as null, so a diverged run's file stays valid JSON.</summary>
public static class ResultJson
{
    /// <summary><paramref name="value"/> as results JSON.</summary>
    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, JsonNumbers.Options);
}

/// <summary>A double as a JSON number when finite, else null (read back as NaN).</summary>
internal sealed class FiniteOrNullConverter : JsonConverter<double>
{
    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? double.NaN : reader.GetDouble();

    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (double.IsFinite(value))
            writer.WriteNumberValue(value);
        else
            writer.WriteNullValue();
    }

    public override bool HandleNull => true;
}
