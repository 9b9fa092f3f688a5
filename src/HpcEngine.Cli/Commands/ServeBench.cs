using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace HpcEngine.Cli.Commands;

/// <summary>`bench serve`: a closed-loop load generator against an Open Inference Protocol server — C concurrent
/// clients send N one-sample infer requests in total (a fixed random input of the model's shape, from the model's
/// metadata), and the throughput, latency percentiles and errors are reported. Progress once a second.</summary>
internal static class ServeBench
{
    public static int Run(BenchOptions o)
    {
        if (o.Url == null)
            throw new ArgumentException("bench serve needs --url (the server, e.g. http://127.0.0.1:8000)");
        if (o.Concurrency < 1 || o.Requests < 1)
            throw new ArgumentException("--concurrency and --requests must be at least 1");
        return Load(o).GetAwaiter().GetResult();
    }

    private static async Task<int> Load(BenchOptions o)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = o.Concurrency })
        {
            BaseAddress = new Uri(o.Url!),
            Timeout = TimeSpan.FromSeconds(60),
        };
        if (o.Token != null)
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", o.Token);
        var (model, body) = await Request(http, o.Model!).ConfigureAwait(false);
        var latencies = new double[o.Requests];
        int next = -1,
            errors = 0,
            done = 0;
        string? firstError = null;
        var clock = Stopwatch.StartNew();
        using var progress = new Timer(
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
        );
        async Task Client()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < o.Requests)
            {
                var t = Stopwatch.StartNew();
                try
                {
                    using var content = new ByteArrayContent(body);
                    content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                    using var response = await http.PostAsync($"/v2/models/{model}/infer", content)
                        .ConfigureAwait(false);
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
                latencies[i] = t.Elapsed.TotalSeconds;
                Interlocked.Increment(ref done);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, o.Concurrency).Select(_ => Task.Run(Client))).ConfigureAwait(false);
        double seconds = clock.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        double P(double q) => latencies[Math.Min(latencies.Length - 1, (int)(q * latencies.Length))] * 1000;
        var result = new Dictionary<string, object?>
        {
            ["url"] = o.Url,
            ["model"] = model,
            ["concurrency"] = o.Concurrency,
            ["requests"] = o.Requests,
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
                $"{o.Requests} requests, concurrency {o.Concurrency}: {o.Requests / seconds:F0} requests/s; latency p50 {P(0.5):F2} ms, p90 {P(0.9):F2} ms, p99 {P(0.99):F2} ms; {errors} errors{(firstError != null ? $" (first: {firstError})" : "")}"
            )
        );
        if (o.Json != null)
            File.WriteAllText(
                o.Json,
                JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true })
            );
        return errors == 0 ? 0 : 1;
    }

    /// <summary>The model (checked to exist on the server) and a one-sample request body of its input shape (normal values, seed 0).</summary>
    private static async Task<(string Model, byte[] Body)> Request(HttpClient http, string model)
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
        return (model, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(body)));
    }
}
