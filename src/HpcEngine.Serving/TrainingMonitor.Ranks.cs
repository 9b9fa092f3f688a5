using System.Text.Json;
using System.Text.Json.Nodes;

namespace HpcEngine.Serving;

public sealed partial class TrainingMonitor
{
    /// <summary>How long a rank's monitor has to answer before the page shows it as unreachable.</summary>
    private static readonly TimeSpan PeerTimeout = TimeSpan.FromSeconds(1);

    private readonly HttpClient _peers = new() { Timeout = PeerTimeout };

    /// <summary>Where the job's other ranks serve their monitors (null: a single process, or not known; the monitor
    /// disposes it). Set it before the page is opened.</summary>
    public MonitorDirectory? Directory { get; set; }

    /// <summary>Every known rank's <c>/api/timeline</c>, fetched from the ranks at once: <c>{ranks: [{rank, address,
    /// step, epoch, state, timeline} or {rank, address, error}]}</c>, by rank. This rank answers from memory.</summary>
    private async Task<string> RanksJson(CancellationToken cancel)
    {
        var known = Directory?.Known() ?? new Dictionary<int, Uri>();
        var ranks = known.Keys.Append(Metrics.Rank).Distinct().Order().ToArray();
        var answers = await Task.WhenAll(
                ranks.Select(async r =>
                {
                    if (r == Metrics.Rank)
                        return WithAddress(JsonNode.Parse(Metrics.History.TimelineJson(r))!, Address);
                    var address = known[r];
                    try
                    {
                        string text = await _peers
                            .GetStringAsync(new Uri(address, "api/timeline"), cancel)
                            .ConfigureAwait(false);
                        return WithAddress(JsonNode.Parse(text)!, address);
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
                    {
                        return new JsonObject
                        {
                            ["rank"] = r,
                            ["address"] = address.ToString(),
                            ["error"] =
                                e is TaskCanceledException
                                    ? $"no answer within {PeerTimeout.TotalSeconds:F0} s"
                                    : $"unreachable: {e.Message}",
                        };
                    }
                })
            )
            .ConfigureAwait(false);
        return new JsonObject { ["ranks"] = new JsonArray(answers) }.ToJsonString();
    }

    private static JsonNode WithAddress(JsonNode node, Uri address)
    {
        node["address"] = address.ToString();
        return node;
    }
}
