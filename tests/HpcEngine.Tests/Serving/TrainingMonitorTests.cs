using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using HpcEngine.Serving;
using HpcEngine.Training;
using SkiaSharp;

namespace HpcEngine.Tests.Serving;

/// <summary>Watching a training run: the metrics and history an in-process run reports, the CSV log, a real Prometheus
/// scraping a running `train --metrics-port`, and the dashboard rendered by headless Chromium.</summary>
[NonParallelizable]
public partial class TrainingMonitorTests
{
    private string _dir = "";
    private string _data = "";

    [SetUp]
    public void SetUp()
    {
        _dir = TestSupport.TempDir("monitor");
        _data = Path.Combine(_dir, "data");
        Directory.CreateDirectory(_data);
        TestSupport.WriteTinyFashionMnist(_data, 300, 100);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    [Test]
    public async Task A_run_reports_its_figures_to_metrics_history_and_the_csv_log()
    {
        var (train, test) = HpcEngine.Data.FashionMnist.Load(_data);
        await using var monitor = await TrainingMonitor.StartAsync(0, "127.0.0.1", 0);
        string csv = Path.Combine(_dir, "log.csv");
        TrainResult r;
        using (train)
        using (test)
        using (var log = new MetricsLogObserver(new StreamWriter(csv)))
            r = Trainer.Run(
                TrainConfig.For("mlp") with
                {
                    Epochs = 2,
                    BatchSize = 32,
                },
                train,
                test,
                "tiny",
                observers: [monitor.Metrics, log]
            );
        using var http = new HttpClient { BaseAddress = monitor.Address };
        string metrics = await http.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain($"hpcengine_train_step{{rank=\"0\"}} {r.Steps}"));
        Assert.That(metrics, Does.Contain($"hpcengine_train_steps_total{{rank=\"0\"}} {r.Steps}"));
        Assert.That(metrics, Does.Contain("hpcengine_train_finished{rank=\"0\"} 1"));
        Assert.That(metrics, Does.Match(@"hpcengine_train_test_accuracy\{rank=""0""\} 0\.\d+"));
        using var history = JsonDocument.Parse(await http.GetStringAsync("/api/history"));
        Assert.That(history.RootElement.GetProperty("step").GetInt64(), Is.EqualTo(r.Steps));
        Assert.That(history.RootElement.GetProperty("loss").GetArrayLength(), Is.EqualTo(r.Steps));
        Assert.That(history.RootElement.GetProperty("accuracy").GetArrayLength(), Is.EqualTo(2)); // one per epoch
        Assert.That(await http.GetStringAsync("/dashboard"), Does.Contain("/api/history").And.Not.Contain("http"));
        var rows = File.ReadAllLines(csv);
        Assert.That(rows[0], Is.EqualTo(MetricsLogObserver.Header));
        Assert.That(rows.Count(l => !l.Contains(",,,,")), Is.EqualTo(r.Steps + 1));
        Assert.That(rows.Count(l => l.Contains(",,,,")), Is.EqualTo(2), "one row per evaluation");
        Assert.That(rows[1], Does.StartWith("1,1,1,"));
    }

    [Test]
    public async Task A_new_generation_sets_the_membership_series()
    {
        await using var monitor = await TrainingMonitor.StartAsync(1, "127.0.0.1", 0);
        monitor.Metrics.OnGeneration(new GenerationEvent(40, 2, 3, [new MembershipSummary(40, "lost", 3, 3, 850)]));
        using var http = new HttpClient { BaseAddress = monitor.Address };
        string metrics = await http.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("hpcengine_train_membership_generation{rank=\"1\"} 2"));
        Assert.That(metrics, Does.Contain("hpcengine_train_world_size{rank=\"1\"} 3"));
        Assert.That(metrics, Does.Contain("hpcengine_train_membership_changes_total{rank=\"1\",kind=\"lost\"} 1"));
    }

    [GeneratedRegex(@"metrics at (http://127\.0\.0\.1:\d+)/metrics")]
    private static partial Regex MetricsLine();

    /// <summary>A training run long enough to be watched (cnn, many epochs), and its metrics address.</summary>
    private async Task<(TestSupport.CliProcess Run, string Address)> StartLongRun(params string[] extra)
    {
        var run = new TestSupport.CliProcess([
            "train",
            "--model",
            "cnn",
            "--epochs",
            "400",
            "--batch-size",
            "16",
            "--data",
            _data,
            "--metrics-port",
            "0",
            .. extra,
        ]);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(60) && !run.Process.HasExited)
        {
            if (MetricsLine().Match(run.Stdout) is { Success: true } m)
                return (run, m.Groups[1].Value);
            await Task.Delay(100);
        }
        run.Dispose();
        Assert.Fail("the run printed no metrics address: " + run.Stdout + run.Stderr);
        return default;
    }

    private static string? Find(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
            if (File.Exists(Path.Combine(dir, name)))
                return Path.Combine(dir, name);
        return null;
    }

    [Test]
    public async Task A_real_prometheus_scrapes_a_running_train()
    {
        string? prometheus = Find("prometheus");
        if (prometheus == null)
            Assert.Ignore("prometheus is not installed (Debian's prometheus package; .ci/run installs it)");
        var (run, address) = await StartLongRun();
        using var _ = run;
        int port = TestSupport.FreePort();
        string config = Path.Combine(_dir, "prometheus.yml");
        File.WriteAllText(
            config,
            $"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hpcengine\n    static_configs:\n      - targets: ['{new Uri(address).Authority}']\n"
        );
        var psi = new ProcessStartInfo(prometheus)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (
            var a in new[]
            {
                $"--config.file={config}",
                $"--storage.tsdb.path={Path.Combine(_dir, "tsdb")}",
                $"--web.listen-address=127.0.0.1:{port}",
            }
        )
            psi.ArgumentList.Add(a);
        using var server = Process.Start(psi)!;
        server.OutputDataReceived += (_, _) => { };
        server.ErrorDataReceived += (_, _) => { };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient
            {
                BaseAddress = new Uri($"http://127.0.0.1:{port}"),
                Timeout = TimeSpan.FromSeconds(5),
            };
            double step = 0;
            var clock = Stopwatch.StartNew();
            while (step <= 0 && clock.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(500);
                try
                {
                    using var doc = JsonDocument.Parse(
                        await http.GetStringAsync("/api/v1/query?query=hpcengine_train_step")
                    );
                    var result = doc.RootElement.GetProperty("data").GetProperty("result");
                    if (result.GetArrayLength() > 0)
                        step = double.Parse(
                            result[0].GetProperty("value")[1].GetString()!,
                            System.Globalization.CultureInfo.InvariantCulture
                        );
                }
                catch (HttpRequestException) { } // not up yet
            }
            Assert.That(step, Is.GreaterThan(0), "Prometheus never saw hpcengine_train_step");
            using var up = JsonDocument.Parse(await http.GetStringAsync("/api/v1/query?query=up{job=\"hpcengine\"}"));
            Assert.That(
                up.RootElement.GetProperty("data").GetProperty("result")[0].GetProperty("value")[1].GetString(),
                Is.EqualTo("1")
            );
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            server.WaitForExit(10_000);
        }
    }

    [Test]
    public async Task Headless_chromium_draws_the_live_dashboard()
    {
        string? chromium = Find("chromium") ?? Find("chromium-browser");
        if (chromium == null)
            Assert.Ignore("chromium is not installed (Debian's chromium package; .ci/run installs it)");
        var (run, address) = await StartLongRun("--dashboard");
        using var _ = run;
        using (var http = new HttpClient())
        {
            var clock = Stopwatch.StartNew();
            while (
                !(await http.GetStringAsync(address + "/api/history")).Contains("\"loss\":[[", StringComparison.Ordinal)
            )
            {
                Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(60)), "no step reported");
                await Task.Delay(200);
            }
        }
        string png = Path.Combine(_dir, "dashboard.png");
        string profile = Path.Combine(_dir, "chromium-profile");
        string[] common =
        [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            $"--user-data-dir={profile}",
            "--virtual-time-budget=4000",
            "--window-size=1200,800",
        ];
        var shot = Run(chromium!, [.. common, $"--screenshot={png}", address + "/dashboard"]);
        Assert.That(File.Exists(png), Is.True, "no screenshot: " + shot);
        using (var bitmap = SKBitmap.Decode(png))
        {
            Assert.That(bitmap.Width, Is.EqualTo(1200));
            var colours = new HashSet<uint>();
            int ink = 0;
            for (int y = 0; y < bitmap.Height; y += 2)
            for (int x = 0; x < bitmap.Width; x += 2)
            {
                var c = bitmap.GetPixel(x, y);
                colours.Add((uint)c);
                if (c.Red > 150 && c.Red - c.Green > 80 && c.Red - c.Blue > 80) // the loss curve is drawn in red
                    ink++;
            }
            Assert.That(colours.Count, Is.GreaterThan(20), "the screenshot is blank");
            Assert.That(ink, Is.GreaterThan(30), "the loss curve was not drawn");
        }
        string dom = Run(chromium!, [.. common, "--dump-dom", address + "/dashboard"]);
        var m = Regex.Match(dom, @"id=""status"">step (\d+), epoch (\d+), running");
        Assert.That(m.Success, Is.True, "the page does not show the run's step: " + dom[..Math.Min(dom.Length, 400)]);
        Assert.That(long.Parse(m.Groups[1].Value), Is.GreaterThan(0));
        Assert.That(
            dom,
            Does.Match(@"class=""rank"">rank 0: step \d+, running"),
            "the ranks card lists the run's rank"
        );
    }

    private static string Run(string exe, string[] args)
    {
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(90_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{exe} did not finish within 90 s");
        }
        return stdout.Result + stderr.Result;
    }
}
