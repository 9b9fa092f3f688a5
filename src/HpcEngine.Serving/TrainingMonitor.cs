using System.Net;
using HpcEngine.Training;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HpcEngine.Serving;

/// <summary>Serves a training rank's <see cref="TrainingMetrics"/> while it trains: Prometheus <c>/metrics</c>, the
/// live dashboard at <c>/dashboard</c> (one HTML page with its own canvas charts, shipped in this assembly: no CDN)
/// and the history it polls at <c>/api/history</c>. Each rank serves its own on port + rank: no figures cross the
/// training group (a collective for monitoring would tie the monitor's health to the job's, and a lost rank 0 would
/// blind it), and Prometheus is made to scrape many targets. With a <see cref="Directory"/>, <c>/api/ranks</c> gathers
/// every rank's timeline from the ranks themselves, so one page shows them all.</summary>
public sealed partial class TrainingMonitor : IAsyncDisposable, IDisposable
{
    private readonly WebApplication _app;

    /// <summary>The observer to attach to the run.</summary>
    public TrainingMetrics Metrics { get; }

    /// <summary>The address it listens on.</summary>
    public Uri Address { get; private set; } = new("http://127.0.0.1");

    private TrainingMonitor(TrainingMetrics metrics, IPAddress host, int port)
    {
        Metrics = metrics;
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = 1024;
            k.Listen(host, port);
        });
        _app = builder.Build();
        _app.MapGet("/metrics", async (HttpContext c) =>
        {
            c.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await Metrics.Registry.CollectAndExportAsTextAsync(c.Response.Body, c.RequestAborted).ConfigureAwait(false);
        });
        _app.MapGet("/api/history", () => Results.Text(Metrics.History.ToJson(), "application/json"));
        _app.MapGet("/api/timeline", () =>
            Results.Text(Metrics.History.TimelineJson(Metrics.Rank), "application/json")
        );
        _app.MapGet("/api/ranks", async (HttpContext c) =>
        {
            string json = await RanksJson(c.RequestAborted).ConfigureAwait(false);
            c.Response.ContentType = "application/json";
            await c.Response.WriteAsync(json, c.RequestAborted).ConfigureAwait(false);
        });
        _app.MapGet("/dashboard", () => Results.Text(Page.Value, "text/html; charset=utf-8"));
        _app.MapGet("/", () => Results.Redirect("/dashboard"));
    }

    private static readonly Lazy<string> Page = new(() =>
    {
        using var s = typeof(TrainingMonitor).Assembly.GetManifestResourceStream("HpcEngine.Serving.dashboard.html")
            ?? throw new InvalidOperationException("internal: the dashboard page is not embedded");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    });

    /// <summary>Starts serving rank <paramref name="rank"/>'s figures on <paramref name="host"/>:<paramref
    /// name="port"/> (0: any free port).</summary>
    public static async Task<TrainingMonitor> StartAsync(int rank, string host, int port)
    {
        ArgumentNullException.ThrowIfNull(host);
        if (!IPAddress.TryParse(host == "localhost" ? "127.0.0.1" : host, out var ip))
            throw new ArgumentException($"metrics host '{host}' is not an IP address");
        var monitor = new TrainingMonitor(new TrainingMetrics(rank), ip, port);
        try
        {
            await monitor._app.StartAsync().ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await monitor._app.DisposeAsync().ConfigureAwait(false);
            throw new IOException(
                $"cannot serve training metrics on {host}:{port}: {e.Message} (is the port taken?)",
                e
            );
        }
        var address = monitor
            ._app.Services.GetRequiredService<IServer>()
            .Features.Get<IServerAddressesFeature>()!
            .Addresses.First();
        monitor.Address = new Uri(address);
        return monitor;
    }

    /// <inheritdoc/>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
        _peers.Dispose();
        Directory?.Dispose();
    }
}
