using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;

namespace HpcEngine.Serving;

/// <summary>The binary tensor data extension (Triton's and KServe's): a request's first
/// <see cref="HeaderLengthHeader"/> bytes are the JSON request, and an input whose parameters give
/// <c>binary_data_size</c> carries its values, little-endian and row-major, in the bytes after it; an output asked
/// for with <c>"parameters": {"binary_data": true}</c> (or every output, with the request parameter
/// <c>binary_data_output</c>) comes back the same way. Clients that care about throughput send tensors this way —
/// Triton's perf_analyzer does by default — because parsing and printing decimal floats is most of a small request's
/// cost.</summary>
public static partial class InferenceProtocol
{
    /// <summary>The HTTP header giving the JSON part's length in bytes.</summary>
    public const string HeaderLengthHeader = "Inference-Header-Content-Length";

    /// <summary>The extension's name in the server metadata.</summary>
    public const string BinaryExtension = "binary_tensor_data";

    /// <summary>Splits a body into its JSON header and binary tail by the <see cref="HeaderLengthHeader"/> value
    /// (null: the whole body is JSON).</summary>
    public static (ReadOnlyMemory<byte> Json, ReadOnlyMemory<byte> Binary) Split(byte[] body, string? headerLength)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (headerLength == null)
            return (body, ReadOnlyMemory<byte>.Empty);
        if (!int.TryParse(headerLength, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n > body.Length)
            throw Bad(
                $"{HeaderLengthHeader}: '{headerLength}' must be the JSON part's length in bytes, 0 to the body's "
                    + $"{body.Length}"
            );
        return (body.AsMemory(0, n), body.AsMemory(n));
    }

    /// <summary>The input's <c>binary_data_size</c> parameter, or null when its data is JSON.</summary>
    private static long? BinaryDataSize(JsonElement input)
    {
        if (!input.TryGetProperty("parameters", out var p) || !p.TryGetProperty("binary_data_size", out var size))
            return null;
        if (size.ValueKind != JsonValueKind.Number || !size.TryGetInt64(out long bytes) || bytes < 0)
            throw Bad($"binary_data_size {size.GetRawText()} must be a non-negative integer (bytes)");
        if (input.TryGetProperty("data", out _))
            throw Bad("the input tensor has both \"data\" and binary_data_size: send its values one way");
        return bytes;
    }

    /// <summary>The input's values from the binary tail: exactly the bytes the shape and datatype give.</summary>
    private static float[] FromBinary(
        ReadOnlySpan<byte> binary,
        long declared,
        string datatype,
        int count,
        ServedModel model,
        int jsonBytes
    )
    {
        int width = datatype == "FP32" ? sizeof(float) : 1;
        long expected = (long)count * model.SampleSize * width;
        if (declared != expected)
            throw Bad(
                $"binary_data_size {declared} does not fit the shape: {count} x {model.SampleSize} {datatype} values "
                    + $"are {expected} bytes"
            );
        if (binary.Length != expected)
            throw Bad(
                $"the body holds {binary.Length} bytes after the {jsonBytes}-byte JSON header; binary_data_size "
                    + $"gives {expected} (set {HeaderLengthHeader} to the JSON part's length)"
            );
        if (width == 1)
            return Normalised(binary, count, model);
        var floats = new float[count * model.SampleSize];
        for (int i = 0; i < floats.Length; i++)
        {
            float f = BinaryPrimitives.ReadSingleLittleEndian(binary.Slice(i * sizeof(float)));
            if (!float.IsFinite(f))
                throw Bad($"binary value {i} is {f.ToString(CultureInfo.InvariantCulture)}: not a finite FP32 value");
            floats[i] = f;
        }
        return floats;
    }

    private static IReadOnlyList<RequestedOutput> Outputs(JsonElement root)
    {
        bool binary = false;
        if (root.TryGetProperty("parameters", out var p) && p.TryGetProperty("binary_data_output", out var all))
            binary = Flag(all, "binary_data_output");
        if (!root.TryGetProperty("outputs", out var outs))
            return [.. OutputNames.Select(n => new RequestedOutput(n, binary))];
        if (outs.ValueKind != JsonValueKind.Array)
            throw Bad("\"outputs\" must be an array of {\"name\": ...}");
        var asked = new List<RequestedOutput>();
        foreach (var o in outs.EnumerateArray())
        {
            string n = Text(o, "name");
            if (!OutputNames.Contains(n))
                throw Bad($"unknown output '{n}': use {string.Join(" or ", OutputNames)}");
            bool b =
                o.TryGetProperty("parameters", out var op) && op.TryGetProperty("binary_data", out var flag)
                    ? Flag(flag, "binary_data")
                    : binary;
            asked.Add(new RequestedOutput(n, b));
        }
        return asked;
    }

    private static bool Flag(JsonElement e, string name) =>
        e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad($"{name} must be true or false, got {e.GetRawText()}"),
        };

    /// <summary>Writes the response — the outputs asked for, [B, classes] FP32 each — into
    /// <paramref name="into"/>: the JSON, then the values of the binary outputs in their order. Returns the JSON
    /// part's length when some output is binary (the <see cref="HeaderLengthHeader"/> to send), else null. A writer,
    /// not a serialised object graph: it is most of a small request's cost.</summary>
    public static int? WriteResponse(ArrayBufferWriter<byte> into, ServedModel model, Parsed request, float[] logits)
    {
        ArgumentNullException.ThrowIfNull(into);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(logits);
        int k = model.Input.Classes,
            start = into.WrittenCount;
        float[] Values(string name) => name == "logits" ? logits : Softmax(logits, k);
        using (var w = new Utf8JsonWriter(into))
        {
            w.WriteStartObject();
            w.WriteString("model_name", model.Name);
            w.WriteString("model_version", model.Version);
            if (request.Id != null)
                w.WriteString("id", request.Id);
            else
                w.WriteNull("id");
            w.WriteStartArray("outputs");
            foreach (var output in request.Outputs)
            {
                w.WriteStartObject();
                w.WriteString("name", output.Name);
                w.WriteString("datatype", "FP32");
                w.WriteStartArray("shape");
                w.WriteNumberValue(request.Count);
                w.WriteNumberValue(k);
                w.WriteEndArray();
                if (output.Binary)
                {
                    w.WriteStartObject("parameters");
                    w.WriteNumber("binary_data_size", (long)request.Count * k * sizeof(float));
                    w.WriteEndObject();
                }
                else
                {
                    w.WriteStartArray("data");
                    foreach (float v in Values(output.Name))
                        w.WriteNumberValue(v);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        if (!request.Outputs.Any(o => o.Binary))
            return null;
        int header = into.WrittenCount - start;
        foreach (var output in request.Outputs.Where(o => o.Binary))
        {
            var values = Values(output.Name);
            var span = into.GetSpan(values.Length * sizeof(float));
            for (int i = 0; i < values.Length; i++)
                BinaryPrimitives.WriteSingleLittleEndian(span.Slice(i * sizeof(float)), values[i]);
            into.Advance(values.Length * sizeof(float));
        }
        return header;
    }
}
