using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using HpcEngine.Distributed;
using HpcEngine.Serving;
using HpcEngine.Training;

namespace HpcEngine.Tests.Serving;

/// <summary>One page for every rank: each rank's monitor puts its address in the job's store, and any rank's
/// <c>/api/ranks</c> gathers the ranks' timelines from the ranks themselves, naming a rank that does not answer.</summary>
public partial class TrainingMonitorTests
{
    [Test]
    public async Task Every_ranks_timeline_reaches_one_page_and_a_silent_rank_is_named()
    {
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true);
        int port = server.ServerPort!.Value;
        MonitorDirectory Directory() => new(TcpStore.Create("127.0.0.1", port, isServer: false), 3);
        await using var rank0 = await TrainingMonitor.StartAsync(0, "127.0.0.1", 0);
        await using var rank1 = await TrainingMonitor.StartAsync(1, "127.0.0.1", 0);
        rank0.Directory = Directory();
        rank1.Directory = Directory();
        rank0.Directory.Publish(0, rank0.Address);
        rank1.Directory.Publish(1, rank1.Address);
        using (var gone = Directory())
            gone.Publish(2, new Uri($"http://127.0.0.1:{TestSupport.FreePort()}/")); // a rank whose monitor is down
        rank1.Metrics.OnStep(new StepEvent(1, 1, 1, 0.5));
        rank1.Metrics.OnComputed(new ComputeEvent(1, 0, 0.01));
        rank1.Metrics.OnStrategyStep(new StrategyStepEvent(1, 0, 0.02, 0, 0.015, 0.005));

        using var http = new HttpClient { BaseAddress = rank0.Address };
        using var doc = JsonDocument.Parse(await http.GetStringAsync("/api/ranks"));
        var ranks = doc.RootElement.GetProperty("ranks").EnumerateArray().ToArray();
        Assert.That(ranks.Select(r => r.GetProperty("rank").GetInt32()), Is.EqualTo(new[] { 0, 1, 2 }));
        Assert.That(ranks[0].GetProperty("step").GetInt64(), Is.EqualTo(0));
        Assert.That(ranks[1].GetProperty("step").GetInt64(), Is.EqualTo(1));
        var point = ranks[1].GetProperty("timeline")[0].EnumerateArray().Select(e => e.GetDouble()).ToArray();
        Assert.That(point, Is.EqualTo(new[] { 1, 0.01, 0.015, 0.005 }).Within(1e-12));
        Assert.That(ranks[1].GetProperty("address").GetString(), Is.EqualTo(rank1.Address.ToString()));
        Assert.That(ranks[2].GetProperty("error").GetString(), Does.Contain("unreachable"));
    }

    [GeneratedRegex(@"rank 0: metrics at (http://127\.0\.0\.1:\d+)/metrics")]
    private static partial Regex RankZeroMetricsLine();

    [Test]
    public async Task A_launched_job_shows_both_ranks_on_rank_0s_page()
    {
        using var run = new TestSupport.CliProcess([
            "launch",
            "--nproc-per-node",
            "2",
            "--",
            "hpcengine",
            "train",
            "--model",
            "mlp",
            "--epochs",
            "400",
            "--batch-size",
            "16",
            "--data",
            _data,
            "--metrics-port",
            "0",
        ]);
        var clock = Stopwatch.StartNew();
        string? address = null;
        while (address == null && clock.Elapsed < TimeSpan.FromSeconds(60) && !run.Process.HasExited)
        {
            if (RankZeroMetricsLine().Match(run.Stdout) is { Success: true } m)
                address = m.Groups[1].Value;
            await Task.Delay(100);
        }
        Assert.That(address, Is.Not.Null, "rank 0 printed no metrics address: " + run.Stdout + run.Stderr);
        using var http = new HttpClient { BaseAddress = new Uri(address!) };
        int[] stepping = [];
        while (stepping.Length < 2 && clock.Elapsed < TimeSpan.FromSeconds(90))
        {
            await Task.Delay(300);
            using var doc = JsonDocument.Parse(await http.GetStringAsync("/api/ranks"));
            stepping =
            [
                .. doc
                    .RootElement.GetProperty("ranks")
                    .EnumerateArray()
                    .Where(r => !r.TryGetProperty("error", out _) && r.GetProperty("step").GetInt64() > 0)
                    .Select(r => r.GetProperty("rank").GetInt32()),
            ];
        }
        Assert.That(stepping, Is.EqualTo(new[] { 0, 1 }), "both ranks' steps on rank 0's page: " + run.Stderr);
    }
}
