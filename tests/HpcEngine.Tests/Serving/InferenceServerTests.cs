using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using HpcEngine.Data.Sharded;
using HpcEngine.Datasets.Prepare;
using HpcEngine.Serving;
using HpcEngine.Tests.Data.Prepared;
using HpcEngine.Training;

namespace HpcEngine.Tests.Serving;

/// <summary>The inference server against a model trained here on a prepared image tree: the Open Inference Protocol
/// endpoints give the engine's own predictions, raw PNG uploads go through the training-time preprocessing, bad
/// requests get a 4xx naming the problem and the server keeps serving, the token and body limits hold, concurrent
/// requests are batched, and a newer checkpoint is swapped in.</summary>
[NonParallelizable]
public partial class InferenceServerTests
{
    private string _dir = "";
    private string _ck = "";
    private string _ds = "";

    [OneTimeSetUp]
    public void Train()
    {
        _dir = TestSupport.TempDir("serve");
        string tree = Path.Combine(_dir, "tree");
        PreparedTestData.WriteImageTree(tree, perClass: 20);
        _ds = Path.Combine(_dir, "ds");
        DatasetPreparer.Prepare(
            new PrepareOptions
            {
                Source = DataSource.Parse("images:" + tree),
                OutDir = _ds,
                Spec = new PipelineSpec
                {
                    Channels = 3,
                    Transforms =
                    [
                        new TransformStep { Op = "resize", Size = [8, 8] },
                        new TransformStep { Op = "normalize" },
                    ],
                },
            }
        );
        _ck = Path.Combine(_dir, "ck");
        using var train = ShardedDataset.Open(_ds);
        using var test = ShardedDataset.Open(_ds, "test");
        Trainer.Run(
            TrainConfig.For("mlp") with
            {
                Epochs = 2,
                BatchSize = 8,
                CheckpointDir = _ck,
            },
            train,
            test,
            "tree"
        );
    }

    [OneTimeTearDown]
    public void Clean() => Directory.Delete(_dir, true);

    private Task<InferenceServer> Start(
        int maxBatch = 64,
        double delayMs = 5,
        string? token = null,
        long body = 16 << 20,
        string? ck = null
    ) =>
        InferenceServer.StartAsync(
            new ServeOptions
            {
                CheckpointDir = ck ?? _ck,
                Port = 0,
                MaxBatch = maxBatch,
                MaxDelayMs = delayMs,
                Token = token,
                MaxBodyBytes = body,
                ReloadInterval = TimeSpan.Zero,
            }
        );

    private static StringContent Json(object body) =>
        new(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    private static object InferBody(float[] data, int[] shape, string datatype = "FP32", string name = "input") =>
        new
        {
            id = "r1",
            inputs = new[]
            {
                new
                {
                    name,
                    shape,
                    datatype,
                    data,
                },
            },
        };

    private static async Task<(HttpStatusCode Status, JsonElement Body)> Send(
        HttpClient http,
        HttpRequestMessage request
    )
    {
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, JsonDocument.Parse(text.Length == 0 ? "{}" : text).RootElement.Clone());
    }

    private static Task<(HttpStatusCode, JsonElement)> Post(HttpClient http, string path, HttpContent content) =>
        Send(http, new HttpRequestMessage(HttpMethod.Post, path) { Content = content });

    [Test]
    public async Task The_protocol_endpoints_answer_with_the_engines_own_predictions()
    {
        await using var server = await Start();
        using var http = new HttpClient { BaseAddress = server.Address };
        Assert.That((await http.GetAsync("/v2/health/live")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That((await http.GetAsync("/v2/health/ready")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var (status, meta) = await Send(http, new HttpRequestMessage(HttpMethod.Get, "/v2/models/mlp"));
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(
            meta.GetProperty("inputs")[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()),
            Is.EqualTo(new[] { -1, 3, 8, 8 })
        );
        Assert.That(meta.GetProperty("versions")[0].GetString(), Is.EqualTo(server.Models.Current.Version));
        Assert.That((await http.GetAsync("/v2/models/mlp/ready")).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        // The test split, normalised as the loader does, through /infer: the same as Predictions.Of in process.
        using var test = ShardedDataset.Open(_ds, "test");
        var loader = new HpcEngine.Data.DataLoader(
            test,
            new HpcEngine.Data.DataLoaderOptions
            {
                BatchSize = test.Count,
                Shuffle = false,
                Prefetch = 0,
            }
        );
        float[] inputs;
        using (var batch = loader.Epoch(0).Single())
            inputs = batch.Inputs.ToArray<float>();
        var (s, body) = await Post(http, "/v2/models/mlp/infer", Json(InferBody(inputs, [test.Count, 3, 8, 8])));
        Assert.That(s, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        Assert.That(body.GetProperty("id").GetString(), Is.EqualTo("r1"));
        var probs = body.GetProperty("outputs")
            .EnumerateArray()
            .Single(o => o.GetProperty("name").GetString() == "probabilities");
        var served = probs.GetProperty("data").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        using var net = LoadModel();
        var expected = Predictions.Of(net, test).SelectMany(p => p.Probabilities).ToArray();
        Assert.That(served, Is.EqualTo(expected).Within(1e-5));

        // UINT8 pixels are normalised by the server exactly as in training.
        var pixels = Enumerable
            .Range(0, test.Count)
            .SelectMany(i => test.Sample(i).ToArray().Select(b => (float)b))
            .ToArray();
        var (s8, body8) = await Post(
            http,
            "/v2/models/mlp/infer",
            Json(InferBody(pixels, [test.Count, 3 * 8 * 8], "UINT8"))
        );
        Assert.That(s8, Is.EqualTo(HttpStatusCode.OK), body8.ToString());
        var logits8 = body8.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(e => e.GetSingle());
        var logits = body.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(e => e.GetSingle());
        Assert.That(logits8, Is.EqualTo(logits).Within(1e-5));
    }

    private HpcEngine.NN.Module LoadModel()
    {
        var (model, _) = Checkpoint.Locate(_ck);
        using var tf = HpcEngine.IO.Safetensors.Open(model!);
        var input = ModelInput.Read(tf.Metadata);
        var net = HpcEngine.NN.Models.Create("mlp", null, input.SampleShape, input.Classes);
        var state = HpcEngine.IO.Safetensors.Load(model!);
        net.LoadStateDict(state);
        foreach (var t in state.Values)
            t.Dispose();
        return net;
    }

    [Test]
    public async Task A_raw_png_goes_through_the_training_time_preprocessing()
    {
        await using var server = await Start();
        using var http = new HttpClient { BaseAddress = server.Address };
        string png = Directory.GetFiles(Path.Combine(_dir, "tree", "red")).Order().First();
        var content = new ByteArrayContent(File.ReadAllBytes(png));
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        var (status, body) = await Post(http, "/v1/predict", content);
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        var p = body.GetProperty("predictions")[0];
        using var net = LoadModel();
        var raw = RawInputs.FromJson(server.Models.Current.Input.Preprocessing);
        using var one = raw.Images([png], 3);
        var expected = Predictions.Of(net, one).Single();
        Assert.That(p.GetProperty("label").GetInt32(), Is.EqualTo(expected.Class));
        Assert.That(p.GetProperty("class").GetString(), Is.EqualTo(server.Models.Current.ClassNames[expected.Class]));
        Assert.That(
            p.GetProperty("probabilities").EnumerateArray().Select(e => e.GetSingle()),
            Is.EqualTo(expected.Probabilities).Within(1e-5)
        );
    }

    [Test]
    public async Task Bad_requests_get_a_4xx_naming_the_problem_and_the_server_keeps_serving()
    {
        await using var server = await Start();
        using var http = new HttpClient { BaseAddress = server.Address };
        var ok = new float[192];
        async Task Expect(HttpStatusCode code, string path, HttpContent content, string message)
        {
            var (status, body) = await Post(http, path, content);
            Assert.That(status, Is.EqualTo(code), body.ToString());
            Assert.That(body.GetProperty("error").GetString(), Does.Contain(message));
        }
        await Expect(
            HttpStatusCode.BadRequest,
            "/v2/models/mlp/infer",
            new StringContent("{\"inputs\": [", Encoding.UTF8),
            "not valid JSON"
        );
        await Expect(
            HttpStatusCode.BadRequest,
            "/v2/models/mlp/infer",
            Json(InferBody(ok, [1, 3, 8, 9])),
            "does not fit model mlp"
        );
        await Expect(
            HttpStatusCode.BadRequest,
            "/v2/models/mlp/infer",
            Json(InferBody(ok, [1, 192], "FP16")),
            "datatype FP16"
        );
        await Expect(
            HttpStatusCode.BadRequest,
            "/v2/models/mlp/infer",
            Json(InferBody(ok, [1, 192], name: "x")),
            "unknown input 'x'"
        );
        await Expect(
            HttpStatusCode.BadRequest,
            "/v2/models/mlp/infer",
            Json(InferBody(ok, [2, 192])),
            "data holds 192 values; the shape gives 384"
        );
        await Expect(
            HttpStatusCode.BadRequest,
            "/v2/models/mlp/infer",
            new StringContent(
                "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,192],\"datatype\":\"FP32\",\"data\":[1e400"
                    + string.Concat(Enumerable.Repeat(",0", 191))
                    + "]}]}"
            ),
            "not a finite FP32 value"
        );
        await Expect(
            HttpStatusCode.BadRequest,
            "/v2/models/mlp/infer",
            new StringContent(
                "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,192],\"datatype\":\"FP32\",\"data\":[\"NaN\""
                    + string.Concat(Enumerable.Repeat(",0", 191))
                    + "]}]}"
            ),
            "every element must be a number"
        );
        await Expect(
            HttpStatusCode.NotFound,
            "/v2/models/resnet/infer",
            Json(InferBody(ok, [1, 192])),
            "unknown model 'resnet'"
        );
        var notImage = new ByteArrayContent(Encoding.ASCII.GetBytes("this is not an image at all"));
        notImage.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        await Expect(HttpStatusCode.BadRequest, "/v1/predict", notImage, "not a decodable image");
        await Expect(
            HttpStatusCode.UnsupportedMediaType,
            "/v1/predict",
            new StringContent("a,b\n1,2", Encoding.UTF8, "text/csv"),
            "takes images"
        );
        var (s, _) = await Send(http, new HttpRequestMessage(HttpMethod.Get, "/nowhere"));
        Assert.That(s, Is.EqualTo(HttpStatusCode.NotFound));
        var (after, body) = await Post(http, "/v2/models/mlp/infer", Json(InferBody(ok, [1, 192])));
        Assert.That(after, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        string metrics = await http.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("hpcengine_requests_total{endpoint=\"infer\",status=\"400\"} 7"));
        Assert.That(metrics, Does.Contain("hpcengine_model_version{model=\"mlp\"}"));
    }

    [Test]
    public async Task A_token_is_required_when_set_and_a_large_body_is_refused()
    {
        await using var server = await Start(token: "s3cret", body: 4096);
        using var http = new HttpClient { BaseAddress = server.Address };
        var (status, body) = await Send(http, new HttpRequestMessage(HttpMethod.Get, "/v2/health/ready"));
        Assert.That(status, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(body.GetProperty("error").GetString(), Does.Contain("bearer token"));
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");
        Assert.That((await http.GetAsync("/v2/health/ready")).StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret");
        Assert.That((await http.GetAsync("/v2/health/ready")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var (big, bigBody) = await Post(http, "/v2/models/mlp/infer", Json(InferBody(new float[192 * 16], [16, 192])));
        Assert.That(big, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge));
        Assert.That(bigBody.GetProperty("error").GetString(), Does.Contain("4096 bytes"));
    }

    [TestCase(64, 20.0)]
    [TestCase(1, 0.0)]
    public async Task Concurrent_requests_are_coalesced_into_batches_up_to_the_limit(int maxBatch, double delayMs)
    {
        await using var server = await Start(maxBatch, delayMs);
        using var http = new HttpClient { BaseAddress = server.Address };
        const int requests = 48;
        var sends = Enumerable
            .Range(0, requests)
            .Select(_ => Post(http, "/v2/models/mlp/infer", Json(InferBody(new float[192], [1, 192]))))
            .ToList();
        var results = await Task.WhenAll(sends);
        Assert.That(results.All(r => r.Item1 == HttpStatusCode.OK));
        string metrics = await http.GetStringAsync("/metrics");
        double passes = Value(metrics, "hpcengine_batch_size_count"),
            samples = Value(metrics, "hpcengine_batch_size_sum");
        Assert.That(samples, Is.EqualTo(requests));
        if (maxBatch == 1)
            Assert.That(passes, Is.EqualTo(requests));
        else
            Assert.That(passes, Is.LessThan(requests / 2), "concurrent requests share forward passes");
    }

    private static double Value(string metrics, string name) =>
        double.Parse(
            metrics.Split('\n').Single(l => l.StartsWith(name + " ", StringComparison.Ordinal)).Split(' ')[1],
            System.Globalization.CultureInfo.InvariantCulture
        );

    [Test]
    public async Task Stopping_lets_in_flight_requests_finish()
    {
        // A long batching delay, and an arrival held open (as if a fifth request were still being read), keep the
        // requests in flight while the server is told to stop.
        var server = await Start(maxBatch: 64, delayMs: 400);
        using var http = new HttpClient { BaseAddress = server.Address };
        Task stopping;
        List<Task<(HttpStatusCode, JsonElement)>> inFlight;
        using (server.Batcher.Arrive())
        {
            inFlight = Enumerable
                .Range(0, 4)
                .Select(_ => Post(http, "/v2/models/mlp/infer", Json(InferBody(new float[192], [1, 192]))))
                .ToList();
            await Task.Delay(100);
            Assert.That(inFlight.Any(t => t.IsCompleted), Is.False, "the batch is still waiting");
            stopping = server.StopAsync();
        }
        var answers = await Task.WhenAll(inFlight);
        await stopping;
        Assert.That(answers.Select(a => a.Item1), Is.All.EqualTo(HttpStatusCode.OK), "drained, not dropped");
        Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/v2/health/live"), "no longer accepting");
        await server.DisposeAsync();
    }

    [Test]
    public async Task A_newer_checkpoint_is_swapped_in_and_named_in_metadata()
    {
        string ck = Path.Combine(_dir, "ck-reload");
        foreach (var f in Directory.GetFiles(_ck))
        {
            Directory.CreateDirectory(ck);
            File.Copy(f, Path.Combine(ck, Path.GetFileName(f)));
        }
        await using var server = await Start(ck: ck);
        using var http = new HttpClient { BaseAddress = server.Address };
        string before = server.Models.Current.Version;
        Assert.That(server.Models.Reload(), Is.False, "nothing new yet");
        using (var train = ShardedDataset.Open(_ds))
        using (var test = ShardedDataset.Open(_ds, "test"))
            Trainer.Run(
                TrainConfig.For("mlp") with
                {
                    Epochs = 3,
                    BatchSize = 8,
                    CheckpointDir = ck,
                    Resume = true,
                    AllowResumeChanges = ["epochs"],
                },
                train,
                test,
                "tree"
            );
        Assert.That(server.Models.Reload(), Is.True);
        var (_, meta) = await Send(http, new HttpRequestMessage(HttpMethod.Get, "/v2/models/mlp"));
        string after = meta.GetProperty("versions")[0].GetString()!;
        Assert.That(long.Parse(after), Is.GreaterThan(long.Parse(before)));
        var (s, body) = await Post(http, "/v2/models/mlp/infer", Json(InferBody(new float[192], [1, 192])));
        Assert.That(s, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(body.GetProperty("model_version").GetString(), Is.EqualTo(after));
        Assert.That(
            await http.GetStringAsync("/metrics"),
            Does.Contain($"hpcengine_model_version{{model=\"mlp\"}} {after}")
        );
    }
}
