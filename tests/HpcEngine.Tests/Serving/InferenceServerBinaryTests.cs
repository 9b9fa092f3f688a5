using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using HpcEngine.Serving;

namespace HpcEngine.Tests.Serving;

/// <summary>The binary tensor data extension (inputs and outputs as raw little-endian bytes after the JSON header)
/// gives the answers the JSON form gives and refuses malformed bodies with a 400 naming the problem; the dynamic
/// batcher closes a batch once nothing more is on its way in, and waits for a request that is.</summary>
public partial class InferenceServerTests
{
    private const int Features = 3 * 8 * 8;

    /// <summary>A binary infer request: the JSON header (its length goes in the header) and then the raw bytes.</summary>
    private static ByteArrayContent Binary(string json, byte[] tail, int? headerLength = null)
    {
        var head = Encoding.UTF8.GetBytes(json);
        var content = new ByteArrayContent([.. head, .. tail]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add(InferenceProtocol.HeaderLengthHeader, (headerLength ?? head.Length).ToString());
        return content;
    }

    private static byte[] Bytes(float[] values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        return bytes;
    }

    private static string BinaryHeader(int count, string datatype, long bytes, string outputs = "") =>
        $"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[{count},{Features}],\"datatype\":\"{datatype}\","
        + $"\"parameters\":{{\"binary_data_size\":{bytes}}}}}]{outputs}}}";

    [Test]
    public async Task Binary_tensor_data_gives_the_answers_json_gives()
    {
        await using var server = await Start();
        using var http = new HttpClient { BaseAddress = server.Address };
        var (_, meta) = await Send(http, new HttpRequestMessage(HttpMethod.Get, "/v2"));
        Assert.That(
            meta.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()),
            Does.Contain(InferenceProtocol.BinaryExtension)
        );
        var rng = new Random(3);
        var x = Enumerable.Range(0, 3 * Features).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var (s, json) = await Post(http, "/v2/models/mlp/infer", Json(InferBody(x, [3, Features])));
        Assert.That(s, Is.EqualTo(HttpStatusCode.OK), json.ToString());
        float[] Data(JsonElement body, string name) =>
            body.GetProperty("outputs")
                .EnumerateArray()
                .Single(o => o.GetProperty("name").GetString() == name)
                .GetProperty("data")
                .EnumerateArray()
                .Select(e => e.GetSingle())
                .ToArray();

        // Binary input; logits back as binary, probabilities as JSON.
        string outputs =
            ",\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":true}},{\"name\":\"probabilities\"}]";
        using var response = await http.PostAsync(
            "/v2/models/mlp/infer",
            Binary(BinaryHeader(3, "FP32", x.Length * 4, outputs), Bytes(x))
        );
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var bytes = await response.Content.ReadAsByteArrayAsync();
        int header = int.Parse(response.Headers.GetValues(InferenceProtocol.HeaderLengthHeader).Single());
        var body = JsonDocument.Parse(bytes.AsMemory(0, header)).RootElement;
        var logitsOut = body.GetProperty("outputs")[0];
        int classes = server.Models.Current.Input.Classes;
        Assert.That(logitsOut.TryGetProperty("data", out _), Is.False, "binary outputs carry no JSON data");
        Assert.That(
            logitsOut.GetProperty("parameters").GetProperty("binary_data_size").GetInt64(),
            Is.EqualTo(3 * classes * 4)
        );
        Assert.That(bytes.Length - header, Is.EqualTo(3 * classes * 4));
        var logits = Enumerable
            .Range(0, 3 * classes)
            .Select(i => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(header + 4 * i)))
            .ToArray();
        Assert.That(logits, Is.EqualTo(Data(json, "logits")).Within(1e-6));
        Assert.That(Data(body, "probabilities"), Is.EqualTo(Data(json, "probabilities")).Within(1e-6));

        // UINT8 pixels as bytes are normalised like UINT8 pixels in JSON; binary_data_output makes every output
        // binary.
        var pixels = Enumerable.Range(0, Features).Select(i => (byte)(i * 7 % 256)).ToArray();
        var (s8, json8) = await Post(
            http,
            "/v2/models/mlp/infer",
            Json(InferBody([.. pixels.Select(p => (float)p)], [1, Features], "UINT8"))
        );
        Assert.That(s8, Is.EqualTo(HttpStatusCode.OK), json8.ToString());
        using var r8 = await http.PostAsync(
            "/v2/models/mlp/infer",
            Binary(BinaryHeader(1, "UINT8", Features, ",\"parameters\":{\"binary_data_output\":true}"), pixels)
        );
        var b8 = await r8.Content.ReadAsByteArrayAsync();
        int h8 = int.Parse(r8.Headers.GetValues(InferenceProtocol.HeaderLengthHeader).Single());
        Assert.That(b8.Length - h8, Is.EqualTo(2 * classes * 4), "logits and probabilities, both binary");
        var logits8 = Enumerable
            .Range(0, classes)
            .Select(i => BinaryPrimitives.ReadSingleLittleEndian(b8.AsSpan(h8 + 4 * i)))
            .ToArray();
        Assert.That(logits8, Is.EqualTo(Data(json8, "logits")).Within(1e-6));
    }

    [Test]
    public async Task Malformed_binary_requests_get_a_400_naming_the_problem()
    {
        await using var server = await Start();
        using var http = new HttpClient { BaseAddress = server.Address };
        var one = Bytes(new float[Features]);
        async Task Expect(HttpContent content, string message)
        {
            var (status, body) = await Post(http, "/v2/models/mlp/infer", content);
            Assert.That(status, Is.EqualTo(HttpStatusCode.BadRequest), body.ToString());
            Assert.That(body.GetProperty("error").GetString(), Does.Contain(message));
        }
        string ok = BinaryHeader(1, "FP32", Features * 4);
        await Expect(Binary(ok, one, headerLength: 1 << 20), "must be the JSON part's length");
        await Expect(Binary(BinaryHeader(1, "FP32", 12), one), "binary_data_size 12 does not fit the shape");
        await Expect(Binary(ok, one[..^4]), $"holds {one.Length - 4} bytes after the");
        await Expect(Binary(ok, [.. one, 0]), $"holds {one.Length + 1} bytes after the");
        await Expect(Binary(BinaryHeader(1, "FP32", -4), one), "binary_data_size -4 must be a non-negative integer");
        var nan = new float[Features];
        nan[5] = float.NaN;
        await Expect(Binary(ok, Bytes(nan)), "binary value 5 is NaN");
        await Expect(
            Binary(JsonSerializer.Serialize(InferBody(new float[Features], [1, Features])), one),
            "declares no \"binary_data_size\""
        );
        await Expect(
            Binary(ok.Replace("\"parameters\"", "\"data\":[0],\"parameters\""), one),
            "both \"data\" and binary_data_size"
        );
        await Expect(
            Binary(ok[..^1] + ",\"parameters\":{\"binary_data_output\":\"yes\"}}", one),
            "binary_data_output must be true or false"
        );
        var (after, body) = await Post(http, "/v2/models/mlp/infer", Binary(ok, one));
        Assert.That(after, Is.EqualTo(HttpStatusCode.OK), body.ToString());
    }

    [Test]
    public async Task A_batch_closes_once_nothing_more_is_arriving_instead_of_waiting_out_the_delay()
    {
        // A ten-minute delay: a batch that waited it out would never answer within the test's guard.
        await using var server = await Start(maxBatch: 64, delayMs: 600_000);
        using var http = new HttpClient { BaseAddress = server.Address };
        var request = Post(http, "/v2/models/mlp/infer", Json(InferBody(new float[Features], [1, Features])));
        Assert.That(await Task.WhenAny(request, Task.Delay(TimeSpan.FromSeconds(60))), Is.SameAs(request));
        Assert.That((await request).Item1, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task An_open_batch_waits_for_a_request_on_its_way_in()
    {
        await using var server = await Start();
        var metrics = new ServeMetrics();
        await using var batcher = new DynamicBatcher(server.Models, metrics, 64, TimeSpan.FromMinutes(10));
        Task first,
            second;
        using (batcher.Arrive())
        {
            // The first request opens a batch while the second is still being read: the batch must take both.
            first = batcher.InferAsync(new float[Features], 1);
            await Task.Delay(50);
            second = batcher.InferAsync(new float[Features], 1);
        }
        await Task.WhenAll(first, second);
        using var text = new MemoryStream();
        await metrics.Registry.CollectAndExportAsTextAsync(text);
        string exported = Encoding.UTF8.GetString(text.ToArray());
        Assert.That(Value(exported, "hpcengine_batch_size_count"), Is.EqualTo(1), "one forward pass");
        Assert.That(Value(exported, "hpcengine_batch_size_sum"), Is.EqualTo(2));
    }
}
