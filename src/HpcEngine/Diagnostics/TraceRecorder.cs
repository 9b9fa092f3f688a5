using System.Diagnostics;
using System.Text.Json;

namespace HpcEngine.Diagnostics;

/// <summary>Records timed spans of one rank and writes them in the Chrome trace format (chrome://tracing, Perfetto):
/// complete events ("ph": "X") with the rank as process id. Timestamps are wall-clock microseconds, so the files of
/// several processes on one machine line up when merged with <see cref="Merge"/>.</summary>
public sealed class TraceRecorder
{
    private readonly List<(string Name, string Category, double StartUs, double DurationUs, int Thread)> _events =
        new();
    private readonly double _originUs;
    private readonly long _originTicks;

    /// <summary>A recorder for the events of rank <paramref name="rank"/> (the trace's process id).</summary>
    public TraceRecorder(int rank)
    {
        Rank = rank;
        _originUs = (DateTime.UtcNow - DateTime.UnixEpoch).Ticks / 10.0;
        _originTicks = Stopwatch.GetTimestamp();
    }

    /// <summary>The rank whose events this records.</summary>
    public int Rank { get; }

    /// <summary>Spans recorded so far.</summary>
    public int Count
    {
        get
        {
            lock (_events)
                return _events.Count;
        }
    }

    /// <summary>Records a span that began at Stopwatch timestamp <paramref name="startTimestamp"/>.</summary>
    public void Add(string name, string category, long startTimestamp, double seconds, int thread = 0)
    {
        if (seconds <= 0)
            return;
        double start = _originUs + Stopwatch.GetElapsedTime(_originTicks, startTimestamp).Ticks / 10.0;
        lock (_events)
            _events.Add((name, category, start, seconds * 1e6, thread));
    }

    /// <summary>Writes the spans as a Chrome trace JSON file.</summary>
    public void Write(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        lock (_events)
        {
            var events = _events
                .Select(e => new Dictionary<string, object>
                {
                    ["name"] = e.Name,
                    ["cat"] = e.Category,
                    ["ph"] = "X",
                    ["ts"] = Math.Round(e.StartUs, 1),
                    ["dur"] = Math.Round(e.DurationUs, 1),
                    ["pid"] = Rank,
                    ["tid"] = e.Thread,
                })
                .ToList();
            events.Insert(
                0,
                new Dictionary<string, object>
                {
                    ["name"] = "process_name",
                    ["ph"] = "M",
                    ["pid"] = Rank,
                    ["args"] = new Dictionary<string, object> { ["name"] = $"rank {Rank}" },
                }
            );
            File.WriteAllText(
                path,
                JsonSerializer.Serialize(
                    new Dictionary<string, object> { ["traceEvents"] = events, ["displayTimeUnit"] = "ms" }
                )
            );
        }
    }

    /// <summary>Concatenates the events of several trace files (one per rank) into one.</summary>
    public static void Merge(IEnumerable<string> inputs, string output)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        var all = new List<JsonElement>();
        foreach (var f in inputs)
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(f));
            if (!doc.RootElement.TryGetProperty("traceEvents", out var ev) || ev.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"{f} is not a Chrome trace (no traceEvents array)");
            all.AddRange(ev.EnumerateArray().Select(e => e.Clone()));
        }
        File.WriteAllText(
            output,
            JsonSerializer.Serialize(
                new Dictionary<string, object> { ["traceEvents"] = all, ["displayTimeUnit"] = "ms" }
            )
        );
    }
}
