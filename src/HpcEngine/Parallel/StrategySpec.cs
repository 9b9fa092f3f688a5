using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.Json.Serialization;
using HpcEngine.IO;

namespace HpcEngine.Parallel;

/// <summary>The kinds of data-parallel strategy.</summary>
public enum StrategyKind
{
    /// <summary>Synchronous DDP: every step averages the gradients.</summary>
    Sync,

    /// <summary>Synchronous, with the optimizer state sharded across ranks (ZeRO stage 1).</summary>
    Zero1,

    /// <summary>An asynchronous parameter server with bounded staleness.</summary>
    ParameterServer,

    /// <summary>Local SGD: H local steps, then the replicas are averaged.</summary>
    LocalSgd,

    /// <summary>DiLoCo: H local steps, then an outer Nesterov step on the averaged pseudo-gradient.</summary>
    DiLoCo,
}

/// <summary>A strategy as users write it — <c>sync</c>, <c>zero1</c>, <c>ssp:K</c>, <c>ssp:inf</c>, <c>ssp:K:S</c>,
/// <c>localsgd:H</c>, <c>diloco:H</c> — parsed in this one place, with the rules that follow from the kind.</summary>
[JsonConverter(typeof(ParsableJsonConverter<StrategySpec>))]
public sealed record StrategySpec(
    StrategyKind Kind,
    int? StalenessBound = null,
    int DedicatedServers = 0,
    int Period = 0
) : IParsable<StrategySpec>
{
    /// <summary>Synchronous data parallelism (the default).</summary>
    public static StrategySpec Sync { get; } = new(StrategyKind.Sync);

    /// <summary>The grammar, for error messages.</summary>
    public const string Grammar =
        "sync, zero1, ssp:K or ssp:K:S (K >= 0 or inf; S dedicated server ranks), localsgd:H or diloco:H";

    /// <summary>Parses <paramref name="text"/>; an error names the text and the grammar.</summary>
    public static StrategySpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var p = text.Split(':');
        static bool Int(string s, int min, out int v) =>
            int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v) && v >= min;
        switch (p[0])
        {
            case "sync" when p.Length == 1:
                return new(StrategyKind.Sync);
            case "zero1" when p.Length == 1:
                return new(StrategyKind.Zero1);
            case "localsgd" or "diloco" when p.Length == 2:
                return Int(p[1], 1, out int h)
                    ? new(p[0] == "diloco" ? StrategyKind.DiLoCo : StrategyKind.LocalSgd, Period: h)
                    : throw new ArgumentException($"strategy '{text}' needs a positive period, e.g. {p[0]}:8");
            case "ssp" when p.Length is 2 or 3:
            {
                int? bound =
                    p[1] == "inf" ? null
                    : Int(p[1], 0, out int k) ? k
                    : throw new ArgumentException(
                        $"strategy '{text}' needs a staleness bound: ssp:0, ssp:2 ... or ssp:inf (then optionally :S "
                            + $"dedicated server ranks)"
                    );
                int servers =
                    p.Length == 2 ? 0
                    : Int(p[2], 1, out int s) ? s
                    : throw new ArgumentException($"strategy '{text}': the dedicated server count must be at least 1");
                return new(StrategyKind.ParameterServer, bound, servers);
            }
            default:
                throw new ArgumentException($"unknown strategy '{text}': use {Grammar}");
        }
    }

    /// <summary>Whether a gradient codec composes with it: the strategies that average a dense tensor (sync averages
    /// gradients, local SGD and DiLoCo pseudo-gradients); zero1 and the parameter server exchange shards.</summary>
    public bool AcceptsCodec => Kind is StrategyKind.Sync or StrategyKind.LocalSgd or StrategyKind.DiLoCo;

    /// <summary>Whether the trainer can checkpoint it (a parameter server's pushes in flight cannot be
    /// captured).</summary>
    public bool CanCheckpoint => Kind != StrategyKind.ParameterServer;

    /// <summary>Whether it runs on device parameters (the parameter server keeps CPU shards).</summary>
    public bool RunsOnDevices => Kind != StrategyKind.ParameterServer;

    /// <summary>The canonical spelling (what <see cref="Parse"/> reads back).</summary>
    public override string ToString() =>
        Kind switch
        {
            StrategyKind.Sync => "sync",
            StrategyKind.Zero1 => "zero1",
            StrategyKind.LocalSgd => $"localsgd:{Period.ToString(CultureInfo.InvariantCulture)}",
            StrategyKind.DiLoCo => $"diloco:{Period.ToString(CultureInfo.InvariantCulture)}",
            _ =>
                $"ssp:{(StalenessBound is int b ? b.ToString(CultureInfo.InvariantCulture) : "inf")}{(DedicatedServers > 0 ? ":" + DedicatedServers.ToString(CultureInfo.InvariantCulture) : "")}",
        };

    static StrategySpec IParsable<StrategySpec>.Parse(string s, IFormatProvider? provider) => Parse(s);

    static bool IParsable<StrategySpec>.TryParse(
        [NotNullWhen(true)] string? s,
        IFormatProvider? provider,
        [MaybeNullWhen(false)] out StrategySpec result
    )
    {
        result = null;
        if (s == null)
            return false;
        try
        {
            result = Parse(s);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
