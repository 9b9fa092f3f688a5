using System.Text.Json;

namespace HpcEngine.Training;

/// <summary>Writes a run's events as JSON lines — <c>{"event":"progress",...}</c>, <c>"evaluation"</c>,
/// <c>"epoch"</c>, <c>"message"</c>, and with <c>steps</c> one <c>"step"</c> line per optimizer step — flushed line by
/// line, so another process can follow a run as it goes (<c>hpcengine train --events FILE</c>; the strategy
/// benchmark follows its runs this way). <see cref="Read"/> turns a line back into its event.</summary>
public sealed class JsonLinesObserver(TextWriter writer, bool steps = false) : ITrainingObserver, IDisposable
{
    private static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    private void Write(string kind, object payload)
    {
        var line = JsonSerializer.Serialize(
            new Dictionary<string, object> { ["event"] = kind, ["data"] = payload },
            Options
        );
        lock (writer)
        {
            writer.WriteLine(line);
            writer.Flush();
        }
    }

    /// <inheritdoc/>
    public void OnMessage(string message) => Write("message", message);

    /// <inheritdoc/>
    public void OnStep(StepEvent step)
    {
        if (steps)
            Write("step", step);
    }

    /// <inheritdoc/>
    public void OnProgress(ProgressEvent progress) => Write("progress", progress);

    /// <inheritdoc/>
    public void OnEvaluation(EvaluationEvent evaluation) => Write("evaluation", evaluation);

    /// <inheritdoc/>
    public void OnEpoch(EpochEvent epoch) => Write("epoch", epoch);

    /// <summary>The event a line holds: a <see cref="ProgressEvent"/>, <see cref="EvaluationEvent"/>,
    /// <see cref="EpochEvent"/>, <see cref="StepEvent"/> or message string; null for a line that is not one.</summary>
    public static object? Read(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        try
        {
            using var doc = JsonDocument.Parse(line);
            var data = doc.RootElement.GetProperty("data");
            return doc.RootElement.GetProperty("event").GetString() switch
            {
                "progress" => data.Deserialize<ProgressEvent>(Options),
                "evaluation" => data.Deserialize<EvaluationEvent>(Options),
                "epoch" => data.Deserialize<EpochEvent>(Options),
                "step" => data.Deserialize<StepEvent>(Options),
                "message" => data.GetString(),
                _ => null,
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null; // a line still being written, or a foreign one
        }
    }

    /// <inheritdoc/>
    public void Dispose() => writer.Dispose();
}
