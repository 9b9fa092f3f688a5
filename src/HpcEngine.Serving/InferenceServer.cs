using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using HpcEngine.Data.Sharded;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HpcEngine.Serving;

/// <summary>Serves a checkpoint over the Open Inference Protocol v2 (REST) on Kestrel: health, model metadata and
/// readiness, <c>infer</c> through the <see cref="DynamicBatcher"/>, a convenience <c>/v1/predict</c> for raw images
/// and CSV rows (the training-time preprocessing), and Prometheus <c>/metrics</c>. Errors are the protocol's
/// <c>{"error": "..."}</c> with a 4xx status naming what was wrong; nothing leaks a stack trace. Stopping (SIGTERM in
/// the CLI) refuses new connections, lets in-flight requests finish, then returns.</summary>
public sealed partial class InferenceServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ModelStore _models;
    private readonly DynamicBatcher _batcher;
    private readonly ServeOptions _options;

    /// <summary>The metrics /metrics exports.</summary>
    public ServeMetrics Metrics { get; }

    /// <summary>The address the server listens on (http://host:port).</summary>
    public Uri Address { get; private set; } = new("http://127.0.0.1");

    /// <summary>The model being served.</summary>
    public ModelStore Models => _models;

    /// <summary>The batcher (tests hold an arrival open on it to keep a batch waiting).</summary>
    internal DynamicBatcher Batcher => _batcher;

    private InferenceServer(ServeOptions options)
    {
        _options = options;
        Metrics = new ServeMetrics();
        _models = new ModelStore(options.CheckpointDir, options.ModelName, options.ReloadInterval, options.Log);
        Metrics.Model(_models.Current);
        _models.Swapped += Metrics.Model;
        _batcher = new DynamicBatcher(
            _models,
            Metrics,
            options.MaxBatch,
            TimeSpan.FromMilliseconds(options.MaxDelayMs)
        );
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.DrainTimeout);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.AddServerHeader = false;
            k.Listen(ParseHost(options.Host), options.Port);
        });
        _app = builder.Build();
        _app.Use(Guard);
        MapEndpoints(_app);
    }

    /// <summary>Loads the checkpoint and starts listening.</summary>
    public static async Task<InferenceServer> StartAsync(ServeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaxBatch < 1)
            throw new ArgumentOutOfRangeException(nameof(options), $"max batch {options.MaxBatch}: at least 1");
        if (!(options.MaxDelayMs >= 0))
            throw new ArgumentOutOfRangeException(nameof(options), $"max delay {options.MaxDelayMs} ms: at least 0");
        var server = new InferenceServer(options);
        try
        {
            await server._app.StartAsync().ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        var address = server
            ._app.Services.GetRequiredService<IServer>()
            .Features.Get<IServerAddressesFeature>()!
            .Addresses.First();
        server.Address = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        options.Log?.Invoke(
            $"serving {server._models.Current.Name} version {server._models.Current.Version} at {server.Address} "
                + $"(max batch {options.MaxBatch}, max delay {options.MaxDelayMs} ms{(options.Token != null ? ", bearer token required" : "")})"
        );
        return server;
    }

    private static IPAddress ParseHost(string host) =>
        host == "localhost" ? IPAddress.Loopback
        : IPAddress.TryParse(host, out var ip) ? ip
        : throw new ArgumentException(
            $"host '{host}' is not an IP address (use 127.0.0.1, 0.0.0.0 or an address of this machine)"
        );

    /// <summary>Completes when the host stops (SIGTERM, Ctrl+C, or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync() => _app.WaitForShutdownAsync();

    /// <summary>Stops accepting, drains in-flight requests, stops.</summary>
    public Task StopAsync() => _app.StopAsync();

    /// <summary>Authentication, the error contract and the request metrics around every request.</summary>
    private async Task Guard(HttpContext context, RequestDelegate next)
    {
        var clock = Stopwatch.StartNew();
        string endpoint = EndpointOf(context.Request.Path);
        Metrics.InFlight(1);
        try
        {
            if (_options.Token != null && !Authorized(context.Request.Headers.Authorization.ToString()))
            {
                context.Response.Headers.WWWAuthenticate = "Bearer";
                await Error(context, 401, "missing or wrong bearer token (send Authorization: Bearer TOKEN)")
                    .ConfigureAwait(false);
                return;
            }
            await next(context).ConfigureAwait(false);
        }
        catch (RequestException e)
        {
            await Error(context, e.Status, e.Message).ConfigureAwait(false);
        }
        catch (BadHttpRequestException e)
        {
            string message =
                e.StatusCode == 413
                    ? $"the request body is larger than the server accepts ({_options.MaxBodyBytes} bytes)"
                    : $"bad request: {e.Message}";
            await Error(context, e.StatusCode, message).ConfigureAwait(false);
        }
        catch (DatasetException e)
        {
            await Error(context, 400, e.Detail.Length > 0 ? e.Detail : e.Message).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _options.Log?.Invoke($"internal error on {context.Request.Path}: {e.GetType().Name}: {e.Message}");
            await Error(context, 500, $"internal error ({e.GetType().Name}); the server keeps serving")
                .ConfigureAwait(false);
        }
        finally
        {
            Metrics.InFlight(-1);
            Metrics.Request(endpoint, context.Response.StatusCode, clock.Elapsed.TotalSeconds);
        }
    }

    private bool Authorized(string header)
    {
        var expected = Encoding.UTF8.GetBytes("Bearer " + _options.Token);
        var given = Encoding.UTF8.GetBytes(header);
        return CryptographicOperations.FixedTimeEquals(expected, given);
    }

    private static async Task Error(HttpContext context, int status, string message)
    {
        if (context.Response.HasStarted)
            return;
        context.Response.StatusCode = status;
        await context
            .Response.WriteAsJsonAsync(new Dictionary<string, string> { ["error"] = message })
            .ConfigureAwait(false);
    }

    /// <summary>The endpoint label of a path for the metrics (model names folded away).</summary>
    private static string EndpointOf(PathString path)
    {
        string p = path.Value ?? "";
        if (p.StartsWith("/v2/models/", StringComparison.Ordinal))
            return p.EndsWith("/infer", StringComparison.Ordinal) ? "infer"
                : p.EndsWith("/ready", StringComparison.Ordinal) ? "model_ready"
                : "model_metadata";
        return p switch
        {
            "/v2/health/live" => "live",
            "/v2/health/ready" => "ready",
            "/v2" => "server_metadata",
            "/v1/predict" => "predict",
            "/metrics" => "metrics",
            _ => "other",
        };
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync().ConfigureAwait(false);
        await _batcher.DisposeAsync().ConfigureAwait(false);
        _models.Dispose();
    }
}
