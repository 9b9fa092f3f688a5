using Prometheus;

namespace HpcEngine.Serving;

/// <summary>The server's Prometheus metrics, in a registry of its own (no process-wide default registry: two servers
/// in one process count apart). prometheus-net is used for the exposition format and histogram buckets; it is the
/// stable (non-beta) Prometheus client for .NET, and the server needs nothing of OpenTelemetry beyond a text
/// endpoint.</summary>
public sealed class ServeMetrics
{
    /// <summary>The registry /metrics exports.</summary>
    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    private readonly Counter _requests;
    private readonly Histogram _latency;
    private readonly Histogram _batchSize;
    private readonly Histogram _inference;
    private readonly Gauge _version;
    private readonly Gauge _inFlight;

    /// <summary>Creates the metrics.</summary>
    public ServeMetrics()
    {
        var f = Metrics.WithCustomRegistry(Registry);
        _requests = f.CreateCounter(
            "hpcengine_requests_total",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"]
        );
        _latency = f.CreateHistogram(
            "hpcengine_request_duration_seconds",
            "Request latency, receipt to response, by endpoint.",
            ["endpoint"],
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 14) }
        );
        _batchSize = f.CreateHistogram(
            "hpcengine_batch_size",
            "Samples per forward pass (dynamic batching).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(1, 2, 10) }
        );
        _inference = f.CreateHistogram(
            "hpcengine_inference_seconds",
            "Seconds per forward pass.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0001, 2, 14) }
        );
        _version = f.CreateGauge("hpcengine_model_version", "The served model's version (checkpoint step).", ["model"]);
        _inFlight = f.CreateGauge("hpcengine_requests_in_flight", "Requests being handled.");
    }

    /// <summary>A request finished.</summary>
    public void Request(string endpoint, int status, double seconds)
    {
        _requests.WithLabels(endpoint, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        _latency.WithLabels(endpoint).Observe(seconds);
    }

    /// <summary>A forward pass ran.</summary>
    public void Batch(int samples, double seconds)
    {
        _batchSize.Observe(samples);
        _inference.Observe(seconds);
    }

    /// <summary>The served model changed.</summary>
    public void Model(ServedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _version.WithLabels(model.Name).Set(double.TryParse(model.Version, out var v) ? v : 0);
    }

    /// <summary>A request started (+1) or ended (−1).</summary>
    public void InFlight(int delta) => _inFlight.Inc(delta);
}
