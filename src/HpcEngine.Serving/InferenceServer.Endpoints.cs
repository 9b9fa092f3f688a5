using System.Buffers;
using System.Runtime.InteropServices;
using HpcEngine.Datasets.Prepare;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace HpcEngine.Serving;

public sealed partial class InferenceServer
{
    private void MapEndpoints(WebApplication app)
    {
        app.MapGet("/v2/health/live", () => Results.Json(new { live = true }));
        app.MapGet("/v2/health/ready", () => Results.Json(new { ready = true }));
        app.MapGet("/v2", () => Results.Json(
                new
                {
                    name = "hpcengine",
                    version = typeof(Tensor).Assembly.GetName().Version?.ToString(),
                    extensions = new[] { InferenceProtocol.BinaryExtension },
                }
            ));
        app.MapGet("/v2/models/{name}", (string name) => Results.Json(InferenceProtocol.Metadata(Model(name))));
        app.MapGet("/v2/models/{name}/ready", (string name) =>
            Results.Json(new { name = Model(name).Name, ready = true })
        );
        app.MapPost("/v2/models/{name}/infer", (Func<string, HttpContext, Task>)Infer);
        app.MapPost("/v1/predict", (Delegate)Predict);
        app.MapGet("/metrics", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await Metrics
                .Registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted)
                .ConfigureAwait(false);
        });
        app.MapFallback(
            (HttpContext context) =>
                throw new RequestException(
                    404,
                    $"no endpoint {context.Request.Method} {context.Request.Path} (see /v2 and /v2/models/{_models.Current.Name})"
                )
        );
    }

    private ServedModel Model(string name)
    {
        var model = _models.Current;
        return name == model.Name
            ? model
            : throw new RequestException(404, $"unknown model '{name}': this server serves '{model.Name}'");
    }

    private static async Task<byte[]> Body(HttpContext context)
    {
        // Kestrel has already refused a declared length over the limit (413), and ends a shorter body with an error.
        if (context.Request.ContentLength is long declared and <= int.MaxValue)
        {
            var exact = new byte[declared];
            await context.Request.Body.ReadExactlyAsync(exact, context.RequestAborted).ConfigureAwait(false);
            return exact;
        }
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
        return buffer.ToArray();
    }

    private async Task Infer(string name, HttpContext context)
    {
        var model = Model(name);
        InferenceProtocol.Parsed request;
        Task<(ServedModel, float[])> inference;
        using (_batcher.Arrive())
        {
            var headers = context.Request.Headers;
            var (json, binary) = InferenceProtocol.Split(
                await Body(context).ConfigureAwait(false),
                headers.TryGetValue(InferenceProtocol.HeaderLengthHeader, out var length) ? length.ToString() : null
            );
            request = InferenceProtocol.Parse(json, binary.Span, model);
            inference = _batcher.InferAsync(request.Inputs, request.Count);
        }
        var (ran, logits) = await inference.ConfigureAwait(false);
        var response = new ArrayBufferWriter<byte>(1024);
        int? header = InferenceProtocol.WriteResponse(response, ran, request, logits);
        if (header is int n)
        {
            context.Response.Headers[InferenceProtocol.HeaderLengthHeader] = n.ToString(
                System.Globalization.CultureInfo.InvariantCulture
            );
            context.Response.ContentType = "application/octet-stream";
        }
        else
            context.Response.ContentType = "application/json";
        context.Response.ContentLength = response.WrittenCount;
        await context.Response.Body.WriteAsync(response.WrittenMemory, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>A raw image (PNG/JPEG body) or CSV text (a header and rows) through the model's training-time
    /// preprocessing.</summary>
    private async Task<IResult> Predict(HttpContext context)
    {
        var model = _models.Current;
        var raw = model.Raw
            ?? throw new RequestException(
                400,
                $"model {model.Name} records no preprocessing for raw inputs: use /v2/models/{model.Name}/infer"
            );
        Task<(ServedModel, float[])> inference;
        int count;
        string[] names;
        using (_batcher.Arrive())
        {
            (var inputs, count, names) = await RawSamples(context, model, raw).ConfigureAwait(false);
            inference = _batcher.InferAsync(inputs, count);
        }
        var (ran, logits) = await inference.ConfigureAwait(false);
        int k = ran.Input.Classes;
        var p = InferenceProtocol.Softmax(logits, k);
        var predictions = Enumerable
            .Range(0, count)
            .Select(i =>
            {
                var row = p.AsSpan(i * k, k).ToArray();
                int best = Array.IndexOf(row, row.Max());
                return new Dictionary<string, object>
                {
                    ["input"] = names[i],
                    ["class"] = ran.ClassNames[best],
                    ["label"] = best,
                    ["probabilities"] = row,
                };
            });
        return Results.Json(
            new Dictionary<string, object>
            {
                ["model_name"] = ran.Name,
                ["model_version"] = ran.Version,
                ["predictions"] = predictions.ToList(),
            }
        );
    }

    /// <summary>The samples of a raw request: one image, or the CSV rows encoded, with a name for each.</summary>
    private static async Task<(float[] Inputs, int Count, string[] Names)> RawSamples(
        HttpContext context,
        ServedModel model,
        RawInputs raw
    )
    {
        var body = await Body(context).ConfigureAwait(false);
        if (body.Length == 0)
            throw new RequestException(400, "empty body: send a PNG or JPEG image, or CSV text with a header row");
        string type = context.Request.ContentType?.Split(';')[0].Trim().ToLowerInvariant() ?? "";
        float[] inputs;
        int count;
        string[] names;
        if (raw.Kind == "image")
        {
            if (type.StartsWith("text/", StringComparison.Ordinal) || type.EndsWith("json", StringComparison.Ordinal))
                throw new RequestException(
                    415,
                    $"model {model.Name} takes images: send the PNG or JPEG bytes (Content-Type image/png)"
                );
            var pixels = raw.Image(body, "the uploaded image");
            inputs = new float[model.SampleSize];
            model.Normalise(pixels, inputs);
            (count, names) = (1, ["image"]);
        }
        else
        {
            if (type.StartsWith("image/", StringComparison.Ordinal))
                throw new RequestException(415, $"model {model.Name} takes CSV rows: send text/csv with a header row");
            var table = CsvTable.Parse(System.Text.Encoding.UTF8.GetString(body), "request");
            var encoder = raw.Table!;
            var (columns, _) = encoder.Bind(table.Header, "request", labelRequired: false);
            count = table.Rows.Count;
            if (count == 0 || count > InferenceProtocol.MaxSamplesPerRequest)
                throw new RequestException(
                    400,
                    $"{count} rows: send 1 to {InferenceProtocol.MaxSamplesPerRequest} under the header"
                );
            inputs = new float[count * encoder.Width];
            names = new string[count];
            for (int r = 0; r < count; r++)
            {
                names[r] = $"line {table.Lines[r]}";
                encoder.Encode(table.Rows[r], columns, inputs.AsSpan(r * encoder.Width, encoder.Width), names[r]);
            }
        }
        return (inputs, count, names);
    }
}
