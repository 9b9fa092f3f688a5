using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace HpcEngine.Cli.Commands;

/// <summary>`bench serve`: a closed-loop load generator against an Open Inference Protocol server — C concurrent
/// clients send N one-sample infer requests in total (a fixed random input of the model's shape, from the model's
/// metadata), after W seconds of untimed ones, and the throughput, latency percentiles and errors (of all requests) are
/// reported. Tensors travel as binary tensor data unless --tensor-format json. Progress once a second.</summary>
internal static class ServeBench
{
    public static int Run(BenchOptions o)
    {
        if (o.Url == null)
            throw new ArgumentException("bench serve needs --url (the server, e.g. http://127.0.0.1:8000)");
        double warmupSeconds = o.WarmupSeconds ?? 5.0;
        if (o.Concurrency < 1 || o.Requests < 1 || !(warmupSeconds >= 0))
            throw new ArgumentException("--concurrency and --requests must be at least 1, --warmup-seconds at least 0");
        if (o.TensorFormat is not ("binary" or "json"))
            throw new ArgumentException($"--tensor-format must be binary or json, got '{o.TensorFormat}'");
        return Load(o).GetAwaiter().GetResult();
    }

    private static async Task<int> Load(BenchOptions o)
    {
        double warmupSeconds = o.WarmupSeconds ?? 5.0;
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = o.Concurrency })
        {
            BaseAddress = new Uri(o.Url!),
            Timeout = TimeSpan.FromSeconds(60),
        };
        if (o.Token != null)
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", o.Token);
        var (model, body, header) = await Request(http, o.Model!, o.TensorFormat == "binary").ConfigureAwait(false);
        var latencies = new double[o.Requests];
        int errors = 0,
            done = 0;
        string? firstError = null;
        var clock = new Stopwatch();
        async Task Send(int i)
        {
            var t = Stopwatch.StartNew();
            try
            {
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue(
                    header == null ? "application/json" : "application/octet-stream"
                );
                if (header != null)
                    content.Headers.Add("Inference-Header-Content-Length", header);
                using var response = await http.PostAsync($"/v2/models/{model}/infer", content).ConfigureAwait(false);
                await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, $"HTTP {(int)response.StatusCode}", null);
                }
            }
            catch (HttpRequestException e)
            {
                Interlocked.Increment(ref errors);
                Interlocked.CompareExchange(ref firstError, e.Message, null);
            }
            if (i >= 0)
            {
                latencies[i] = t.Elapsed.TotalSeconds;
                Interlocked.Increment(ref done);
            }
        }
        // Closed loop: C clients, each sending its next request when the last is answered. Warm-up requests (i < 0)
        // run until the warm-up time is over; the timed ones until N are sent.
        var warmup = Stopwatch.StartNew();
        int warmed = 0;
        async Task Phase(bool timed)
        {
            int next = -1;
            async Task Client()
            {
                if (!timed)
                    while (warmup.Elapsed.TotalSeconds < warmupSeconds)
                    {
                        await Send(-1).ConfigureAwait(false);
                        Interlocked.Increment(ref warmed);
                    }
                else
                {
                    int i;
                    while ((i = Interlocked.Increment(ref next)) < o.Requests)
                        await Send(i).ConfigureAwait(false);
                }
            }
            await Task.WhenAll(Enumerable.Range(0, o.Concurrency).Select(_ => Task.Run(Client))).ConfigureAwait(false);
        }
        if (warmupSeconds > 0)
            Console.Error.WriteLine(
                string.Create(CultureInfo.InvariantCulture, $"bench serve: warming up for {warmupSeconds:F0} s")
            );
        await Phase(timed: false).ConfigureAwait(false);
        clock.Start();
        using (
            new Timer(
                _ =>
                {
                    double rate = Volatile.Read(ref done) / clock.Elapsed.TotalSeconds;
                    Console.Error.WriteLine(
                        string.Create(
                            CultureInfo.InvariantCulture,
                            $"bench serve: {done}/{o.Requests} ({rate:F0} requests/s, ETA {(o.Requests - done) / Math.Max(rate, 1e-9):F0} s)"
                        )
                    );
                },
                null,
                1000,
                1000
            )
        )
            await Phase(timed: true).ConfigureAwait(false);
        double seconds = clock.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        double P(double q) => latencies[Math.Min(latencies.Length - 1, (int)(q * latencies.Length))] * 1000;
        var result = new Dictionary<string, object?>
        {
            ["url"] = o.Url,
            ["model"] = model,
            ["concurrency"] = o.Concurrency,
            ["requests"] = o.Requests,
            ["warmup_seconds"] = warmupSeconds,
            ["warmup_requests"] = warmed,
            ["tensor_format"] = o.TensorFormat,
            ["errors"] = errors,
            ["first_error"] = firstError,
            ["seconds"] = seconds,
            ["requests_per_second"] = o.Requests / seconds,
            ["latency_ms_p50"] = P(0.50),
            ["latency_ms_p90"] = P(0.90),
            ["latency_ms_p99"] = P(0.99),
        };
        Console.WriteLine(
            string.Create(
                CultureInfo.InvariantCulture,
                $"{o.Requests} requests, concurrency {o.Concurrency} ({o.TensorFormat} tensors, after {warmed} untimed): {o.Requests / seconds:F0} requests/s; latency p50 {P(0.5):F2} ms, p90 {P(0.9):F2} ms, p99 {P(0.99):F2} ms; {errors} errors{(firstError != null ? $" (first: {firstError})" : "")}"
            )
        );
        if (o.Json != null)
            File.WriteAllText(
                o.Json,
                JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true })
            );
        return errors == 0 ? 0 : 1;
    }

    /// <summary>The model (checked to exist on the server) and a one-sample request body of its input shape (uniform
    /// values in [-1, 1), seed 0): all JSON, or a JSON header (its length is the third item) and the input and outputs
    /// as binary tensor data.</summary>
    private static async Task<(string Model, byte[] Body, string? HeaderLength)> Request(
        HttpClient http,
        string model,
        bool binary
    )
    {
        (await http.GetAsync("/v2/health/ready").ConfigureAwait(false)).EnsureSuccessStatusCode();
        using var found = await http.GetAsync($"/v2/models/{model}").ConfigureAwait(false);
        if (!found.IsSuccessStatusCode)
            throw new ArgumentException(
                $"--model {model}: the server answers {(int)found.StatusCode}: {await found.Content.ReadAsStringAsync().ConfigureAwait(false)}"
            );
        using var meta = JsonDocument.Parse(await http.GetStringAsync($"/v2/models/{model}").ConfigureAwait(false));
        var shape = meta
            .RootElement.GetProperty("inputs")[0]
            .GetProperty("shape")
            .EnumerateArray()
            .Select(e => e.GetInt32())
            .ToArray();
        shape[0] = 1;
        int size = shape.Skip(1).Aggregate(1, (a, b) => a * b);
        var rng = new Random(0);
        var data = Enumerable.Range(0, size).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        if (!binary)
        {
            var body = new
            {
                inputs = new[]
                {
                    new
                    {
                        name = "input",
                        shape,
                        datatype = "FP32",
                        data,
                    },
                },
            };
            return (model, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(body)), null);
        }
        var head = new
        {
            inputs = new[]
            {
                new
                {
                    name = "input",
                    shape,
                    datatype = "FP32",
                    parameters = new { binary_data_size = size * sizeof(float) },
                },
            },
            parameters = new { binary_data_output = true },
        };
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(head));
        var bytes = new byte[json.Length + size * sizeof(float)];
        json.CopyTo(bytes, 0);
        for (int i = 0; i < size; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(json.Length + i * sizeof(float)), data[i]);
        return (model, bytes, json.Length.ToString(CultureInfo.InvariantCulture));
    }
}
