using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace HpcEngine.Tests.Serving;

/// <summary>`hpcengine serve` and `bench serve` as processes: the server prints its address, answers, and on SIGTERM
/// drains and exits 0; the load generator reports throughput, percentiles and errors.</summary>
[NonParallelizable]
public partial class ServeCliTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = TestSupport.TempDir("servecli");

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    [GeneratedRegex(@"at (http://127\.0\.0\.1:\d+)/")]
    private static partial Regex AddressLine();

    [Test]
    public async Task Serve_answers_the_load_generator_and_exits_0_on_sigterm()
    {
        string data = Path.Combine(_dir, "data"),
            ck = Path.Combine(_dir, "ck");
        Directory.CreateDirectory(data);
        TestSupport.WriteTinyFashionMnist(data, 300, 100);
        var t = TestSupport.RunCli([
            "train",
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--data",
            data,
            "--checkpoint-dir",
            ck,
        ]);
        Assert.That(t.Exit, Is.EqualTo(0), t.Stderr);

        using var server = new TestSupport.CliProcess([
            "serve",
            "--checkpoint",
            ck,
            "--port",
            "0",
            "--max-batch",
            "16",
        ]);
        string? address = null;
        var deadline = Stopwatch.StartNew();
        while (address == null && deadline.Elapsed < TimeSpan.FromSeconds(60) && !server.Process.HasExited)
        {
            await Task.Delay(100);
            if (AddressLine().Match(server.Stdout) is { Success: true } m)
                address = m.Groups[1].Value;
        }
        Assert.That(address, Is.Not.Null, "no address printed: " + server.Stdout + server.Stderr);

        string json = Path.Combine(_dir, "load.json");
        var load = TestSupport.RunCli([
            "bench",
            "serve",
            "--url",
            address!,
            "--model",
            "mlp",
            "--concurrency",
            "8",
            "--requests",
            "300",
            "--warmup-seconds",
            "0.5",
            "--json",
            json,
        ]);
        Assert.That(load.Exit, Is.EqualTo(0), load.Stdout + load.Stderr);
        Assert.That(load.Stdout, Does.Contain("300 requests, concurrency 8 (binary tensors").And.Contain("0 errors"));
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
        {
            var r = doc.RootElement;
            Assert.That(r.GetProperty("errors").GetInt32(), Is.EqualTo(0));
            Assert.That(r.GetProperty("tensor_format").GetString(), Is.EqualTo("binary"));
            Assert.That(r.GetProperty("warmup_requests").GetInt32(), Is.GreaterThan(0), "the warm-up ran");
            Assert.That(
                r.GetProperty("latency_ms_p50").GetDouble(),
                Is.LessThanOrEqualTo(r.GetProperty("latency_ms_p99").GetDouble())
            );
        }
        using var http = new HttpClient { BaseAddress = new Uri(address!) };
        Assert.That((await http.GetAsync("/v2/health/ready")).StatusCode, Is.EqualTo(HttpStatusCode.OK));

        Assert.That(HpcEngine.Distributed.Launch.ProcessControl.Signal(server.Process.Id, 15), Is.True);
        Assert.That(server.WaitForExit(30_000), Is.True, "serve did not stop on SIGTERM");
        Assert.That(server.Process.ExitCode, Is.EqualTo(0), server.Stderr);
        Assert.That(server.Stdout, Does.Contain("stopped (in-flight requests drained)"));
    }

    [Test]
    public void Serve_refuses_a_directory_without_a_checkpoint_in_one_line()
    {
        var r = TestSupport.RunCli(["serve", "--checkpoint", _dir, "--port", "0"], timeoutSeconds: 60);
        Assert.That(r.Exit, Is.EqualTo(2), r.Stdout + r.Stderr);
        Assert.That(r.Stderr, Does.Contain("holds no checkpoint"));
    }
}
