using System.Text.Json;
using System.Text.Json.Serialization;

namespace HpcEngine.IO;

/// <summary>Writes a spec (<see cref="Parallel.StrategySpec"/>, <see cref="Compression.CodecSpec"/>, <see
/// cref="Device"/>) as the text users type, and reads it back through its parser: configs and checkpoints keep the
/// spelling people know, and a bad value fails with the parser's message.</summary>
public sealed class ParsableJsonConverter<T> : JsonConverter<T>
    where T : IParsable<T>
{
    /// <summary>Parses the JSON string with <c>T.Parse</c>; a value it refuses is a <see cref="JsonException"/> naming
    /// it.</summary>
    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var text = reader.GetString() ?? throw new JsonException($"expected a {typeof(T).Name} as text, got null");
        try
        {
            return T.Parse(text, null);
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            throw new JsonException(e.Message, e);
        }
    }

    /// <summary>Writes the value's <c>ToString()</c>, the form <c>T.Parse</c> reads back.</summary>
    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WriteStringValue(value?.ToString());
    }
}
