using CommandLine;
using HpcEngine.Serving;

namespace HpcEngine.Cli.Commands;

[Verb(
    "serve",
    HelpText = "Serve a checkpoint over the Open Inference Protocol v2 (REST): /v2/health/*, /v2/models/NAME[/ready|/infer], "
        + "/v1/predict (a PNG or CSV rows), /metrics (Prometheus). Dynamic batching; a newer checkpoint is hot-reloaded; "
        + "SIGTERM drains in-flight requests and exits 0."
)]
public sealed class ServeOptionsVerb
{
    [Option("checkpoint", Required = true, HelpText = "The checkpoint directory (train --checkpoint-dir).")]
    public string Checkpoint { get; set; } = "";

    [Option("host", Default = "127.0.0.1", HelpText = "The address to bind (loopback unless told otherwise).")]
    public string Host { get; set; } = "127.0.0.1";

    [Option("port", Default = 8000, HelpText = "The port (0: any free one; the address is printed).")]
    public int Port { get; set; }

    [Option("max-batch", Default = 64, HelpText = "Most samples per forward pass (1: no batching).")]
    public int MaxBatch { get; set; }

    [Option("max-delay-ms", Default = 5.0, HelpText = "How long a batch waits for more requests.")]
    public double MaxDelayMs { get; set; }

    [Option("token", HelpText = "Require Authorization: Bearer TOKEN on every request (401 otherwise).")]
    public string? Token { get; set; }

    [Option("max-body-bytes", Default = 16L << 20, HelpText = "Largest request body (413 beyond).")]
    public long MaxBodyBytes { get; set; }

    [Option("model-name", HelpText = "The model's name in URLs (default: its architecture).")]
    public string? ModelName { get; set; }

    [Option(
        "reload-seconds",
        Default = 2.0,
        HelpText = "Poll the directory for a newer checkpoint this often (0: never)."
    )]
    public double ReloadSeconds { get; set; }
}

internal static class ServeCommand
{
    public static int Run(ServeOptionsVerb o)
    {
        if (o.Port is < 0 or > 65535)
            throw new ArgumentException($"--port {o.Port}: use 0..65535");
        if (o.MaxBatch < 1)
            throw new ArgumentException($"--max-batch {o.MaxBatch}: at least 1");
        if (!(o.MaxDelayMs >= 0) || !(o.ReloadSeconds >= 0))
            throw new ArgumentException("--max-delay-ms and --reload-seconds must be at least 0");
        if (!Directory.Exists(o.Checkpoint))
            throw new DirectoryNotFoundException($"--checkpoint: directory '{o.Checkpoint}' does not exist");
        return Serve(o).GetAwaiter().GetResult();
    }

    private static async Task<int> Serve(ServeOptionsVerb o)
    {
        await using var server = await InferenceServer
            .StartAsync(
                new ServeOptions
                {
                    CheckpointDir = o.Checkpoint,
                    Host = o.Host,
                    Port = o.Port,
                    MaxBatch = o.MaxBatch,
                    MaxDelayMs = o.MaxDelayMs,
                    Token = o.Token,
                    MaxBodyBytes = o.MaxBodyBytes,
                    ModelName = o.ModelName,
                    ReloadInterval = TimeSpan.FromSeconds(o.ReloadSeconds),
                    Log = line => Console.WriteLine($"serve: {line}"),
                }
            )
            .ConfigureAwait(false);
        await server.WaitForShutdownAsync().ConfigureAwait(false);
        Console.WriteLine("serve: stopped (in-flight requests drained)");
        return 0;
    }
}
