using System.Globalization;
using System.Text.Json;

namespace HpcEngine.Serving;

/// <summary>A request the server refuses: the HTTP status and the message of the protocol's
/// <c>{"error": "..."}</c>.</summary>
public sealed class RequestException(int status, string message) : Exception(message)
{
    /// <summary>The HTTP status (400, 401, 404, 413, 415).</summary>
    public int Status { get; } = status;
}

/// <summary>The Open Inference Protocol v2 (KServe, Triton) inference request and response as JSON: one input tensor
/// named <see cref="InputName"/> — FP32 as the model takes it (normalised pixels, encoded features), or UINT8 pixels
/// for image models (normalised by the server as in training) — with shape [B, ...sample] or [B, F] and its data flat
/// or nested in row-major order; outputs <c>logits</c> and <c>probabilities</c> [B, classes] FP32.</summary>
public static partial class InferenceProtocol
{
    /// <summary>The input tensor's name.</summary>
    public const string InputName = "input";

    /// <summary>The output tensors' names.</summary>
    public static readonly string[] OutputNames = ["logits", "probabilities"];

    /// <summary>The most samples one request may carry.</summary>
    public const int MaxSamplesPerRequest = 4096;

    /// <summary>An output the request asks for, and whether it comes back as binary tensor data.</summary>
    public sealed record RequestedOutput(string Name, bool Binary);

    /// <summary>A parsed request: its id, the model inputs (row-major floats) and the outputs asked for.</summary>
    public sealed record Parsed(string? Id, float[] Inputs, int Count, IReadOnlyList<RequestedOutput> Outputs);

    /// <summary>Parses and checks an all-JSON infer request for <paramref name="model"/>; every problem is a 400
    /// naming it.</summary>
    public static Parsed Parse(ReadOnlyMemory<byte> body, ServedModel model) => Parse(body, default, model);

    /// <summary>Parses and checks an infer request whose JSON header is <paramref name="json"/> and whose binary
    /// tensor data (the extension's tail of the body; empty for an all-JSON request) is <paramref name="binary"/>;
    /// every problem is a 400 naming it.</summary>
    public static Parsed Parse(ReadOnlyMemory<byte> json, ReadOnlySpan<byte> binary, ServedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw Bad($"the body is not valid JSON: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Bad("the body must be a JSON object with \"inputs\"");
            string? id =
                root.TryGetProperty("id", out var idElement) && idElement.ValueKind == JsonValueKind.String
                    ? idElement.GetString()
                    : null;
            if (
                !root.TryGetProperty("inputs", out var inputs)
                || inputs.ValueKind != JsonValueKind.Array
                || inputs.GetArrayLength() != 1
            )
                throw Bad($"\"inputs\" must be an array of one tensor, named '{InputName}'");
            var input = inputs[0];
            string name = Text(input, "name");
            if (name != InputName)
                throw Bad($"unknown input '{name}': model {model.Name} has one input, '{InputName}'");
            string datatype = Text(input, "datatype");
            if (datatype is not ("FP32" or "UINT8"))
                throw Bad($"datatype {datatype} is not accepted: send FP32 (model inputs) or UINT8 (pixels)");
            if (datatype == "UINT8" && !model.Input.IsPixels)
                throw Bad("UINT8 input is for image models; this model takes FP32 features");
            var shape = Shape(input, model);
            int count = shape[0];
            var floats = BinaryDataSize(input) is { } size
                ? FromBinary(binary, size, datatype, count, model, json.Length)
                : FromJson(input, binary.Length, datatype, count, model);
            return new Parsed(id, floats, count, Outputs(root));
        }
    }

    /// <summary>The values of the input's "data" (flat or nested) as the model's floats.</summary>
    private static float[] FromJson(JsonElement input, int binaryBytes, string datatype, int count, ServedModel model)
    {
        if (binaryBytes > 0)
            throw Bad(
                $"the body holds {binaryBytes} bytes after the JSON header, but the input declares no "
                    + "\"binary_data_size\" parameter"
            );
        var values = Flatten(input.TryGetProperty("data", out var data) ? data : default, count * model.SampleSize);
        if (datatype == "UINT8")
        {
            var pixels = new byte[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                double v = values[i];
                if (v < 0 || v > 255 || v != Math.Floor(v))
                    throw Bad($"data[{i}] is {v.ToString(CultureInfo.InvariantCulture)}: not a UINT8 value");
                pixels[i] = (byte)v;
            }
            return Normalised(pixels, count, model);
        }
        var floats = new float[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            float f = (float)values[i];
            if (!float.IsFinite(f))
                throw Bad($"data[{i}] is {values[i].ToString(CultureInfo.InvariantCulture)}: not a finite FP32 value");
            floats[i] = f;
        }
        return floats;
    }

    /// <summary>UINT8 pixels of <paramref name="count"/> samples through the training-time normalisation.</summary>
    private static float[] Normalised(ReadOnlySpan<byte> pixels, int count, ServedModel model)
    {
        var floats = new float[pixels.Length];
        for (int s = 0; s < count; s++)
            model.Normalise(
                pixels.Slice(s * model.SampleSize, model.SampleSize),
                floats.AsSpan(s * model.SampleSize, model.SampleSize)
            );
        return floats;
    }

    private static RequestException Bad(string message) => new(400, message);

    private static string Text(JsonElement e, string field) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString()!
            : throw Bad($"the input tensor needs a string \"{field}\"");

    private static int[] Shape(JsonElement input, ServedModel model)
    {
        if (!input.TryGetProperty("shape", out var s) || s.ValueKind != JsonValueKind.Array)
            throw Bad("the input tensor needs \"shape\", an array of integers");
        var shape = new List<int>();
        foreach (var d in s.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int v) || v < 1)
                throw Bad($"shape {s.GetRawText()}: every dimension must be a positive integer");
            shape.Add(v);
        }
        var sample = model.Input.SampleShape;
        string expected = $"[B, {string.Join(", ", sample)}] or [B, {model.SampleSize}]";
        bool full = shape.Count == sample.Count + 1 && shape.Skip(1).SequenceEqual(sample);
        bool flat = shape.Count == 2 && shape[1] == model.SampleSize;
        if (!full && !flat)
            throw Bad($"shape {s.GetRawText()} does not fit model {model.Name}: send {expected}");
        if (shape[0] > MaxSamplesPerRequest)
            throw Bad($"{shape[0]} samples in one request: at most {MaxSamplesPerRequest}");
        return [.. shape];
    }

    private static double[] Flatten(JsonElement data, int expected)
    {
        if (data.ValueKind != JsonValueKind.Array)
            throw Bad("the input tensor needs \"data\", an array of numbers (flat or nested, row-major)");
        var values = new List<double>(expected);
        void Walk(JsonElement e)
        {
            foreach (var x in e.EnumerateArray())
            {
                if (x.ValueKind == JsonValueKind.Array)
                    Walk(x);
                else if (x.ValueKind == JsonValueKind.Number && x.TryGetDouble(out double v))
                {
                    if (values.Count == expected)
                        throw Bad($"data holds more than the {expected} values the shape gives");
                    values.Add(v);
                }
                else
                    throw Bad($"data holds {x.GetRawText()}: every element must be a number");
            }
        }
        Walk(data);
        if (values.Count != expected)
            throw Bad($"data holds {values.Count} values; the shape gives {expected}");
        return [.. values];
    }

    /// <summary>Row-wise softmax of [n, k] logits (max-subtracted, in double).</summary>
    public static float[] Softmax(float[] logits, int k)
    {
        ArgumentNullException.ThrowIfNull(logits);
        var p = new float[logits.Length];
        for (int r = 0; r < logits.Length / k; r++)
        {
            var row = logits.AsSpan(r * k, k);
            float max = float.NegativeInfinity;
            foreach (float v in row)
                max = Math.Max(max, v);
            double sum = 0;
            for (int c = 0; c < k; c++)
                sum += Math.Exp(row[c] - max);
            for (int c = 0; c < k; c++)
                p[r * k + c] = (float)(Math.Exp(row[c] - max) / sum);
        }
        return p;
    }

    /// <summary>The model metadata of the protocol.</summary>
    public static Dictionary<string, object> Metadata(ServedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        int[] input = [-1, .. model.Input.SampleShape];
        return new Dictionary<string, object>
        {
            ["name"] = model.Name,
            ["versions"] = new[] { model.Version },
            ["platform"] = $"hpcengine_{model.Architecture}",
            ["inputs"] = new[]
            {
                new Dictionary<string, object>
                {
                    ["name"] = InputName,
                    ["datatype"] = "FP32",
                    ["shape"] = input,
                },
            },
            ["outputs"] = OutputNames
                .Select(n => new Dictionary<string, object>
                {
                    ["name"] = n,
                    ["datatype"] = "FP32",
                    ["shape"] = new[] { -1, model.Input.Classes },
                })
                .ToArray(),
            ["parameters"] = new Dictionary<string, object?>
            {
                ["classes"] = model.ClassNames,
                ["input_kind"] = model.Input.IsPixels
                    ? "pixels (UINT8 accepted, normalised by the server)"
                    : "features",
                ["raw_inputs"] = model.Raw?.Kind,
            },
        };
    }
}
