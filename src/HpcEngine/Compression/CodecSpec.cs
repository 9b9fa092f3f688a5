using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.Json.Serialization;
using HpcEngine.IO;

namespace HpcEngine.Compression;

/// <summary>The gradient codecs.</summary>
public enum CodecKind
{
    /// <summary>Dense float32 (the codec layer's accounting without compression).</summary>
    None,

    /// <summary>IEEE half precision.</summary>
    Fp16,

    /// <summary>bfloat16.</summary>
    Bf16,

    /// <summary>The largest fraction of entries by magnitude, with error feedback.</summary>
    TopK,

    /// <summary>A random fraction of entries (shared seed), with error feedback.</summary>
    RandomK,

    /// <summary>Stochastic 8-bit quantization (QSGD-style).</summary>
    Int8,

    /// <summary>One bit per entry and a scale (signSGD with error feedback).</summary>
    Sign,

    /// <summary>Rank-R power iteration (PowerSGD), with error feedback.</summary>
    PowerSgd,

    /// <summary>Deep gradient compression: top-k with momentum correction (the codec owns SGD's momentum).</summary>
    Dgc,
}

/// <summary>A codec as users write it — <c>none</c>, <c>fp16</c>, <c>bf16</c>, <c>topk:F</c>, <c>topk:F:W</c>,
/// <c>randomk:F</c>, <c>int8</c> (or <c>qsgd</c>), <c>sign</c>, <c>powersgd:R</c>, <c>dgc:F</c> — parsed in this one
/// place; <see cref="Create"/> builds the codec.</summary>
[JsonConverter(typeof(ParsableJsonConverter<CodecSpec>))]
public sealed record CodecSpec(CodecKind Kind, double Fraction = 0, int Rank = 0, int WarmupSteps = 0)
    : IParsable<CodecSpec>
{
    /// <summary>The grammar, for error messages.</summary>
    public const string Grammar = "none, fp16, bf16, topk:F, randomk:F, int8, sign, powersgd:R or dgc:F";

    /// <summary>No compression.</summary>
    public static CodecSpec None { get; } = new(CodecKind.None);

    /// <summary>Whether the codec applies SGD's momentum itself (momentum correction): the optimizer then runs
    /// without it, so it needs SGD under the sync strategy.</summary>
    public bool OwnsMomentum => Kind == CodecKind.Dgc;

    /// <summary>Parses <paramref name="text"/>; an error names the text and the grammar.</summary>
    public static CodecSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var p = text.Split(':');
        double Fraction() =>
            p.Length >= 2
            && double.TryParse(p[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double f)
            && f > 0
            && f <= 1
                ? f
                : throw new ArgumentException($"codec '{text}' needs a fraction in (0, 1], e.g. {p[0]}:0.01");
        void Arity(int most)
        {
            if (p.Length > most)
                throw new ArgumentException($"codec '{text}' has too many parts: use {Grammar}");
        }
        switch (p[0])
        {
            case "none":
                Arity(1);
                return None;
            case "fp16":
                Arity(1);
                return new(CodecKind.Fp16);
            case "bf16":
                Arity(1);
                return new(CodecKind.Bf16);
            case "int8" or "qsgd":
                Arity(1);
                return new(CodecKind.Int8);
            case "sign":
                Arity(1);
                return new(CodecKind.Sign);
            case "randomk":
                Arity(2);
                return new(CodecKind.RandomK, Fraction());
            case "dgc":
                Arity(2);
                return new(CodecKind.Dgc, Fraction());
            case "topk":
                Arity(3);
                int warmup =
                    p.Length < 3 ? 0
                    : int.TryParse(p[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out int w) && w >= 0 ? w
                    : throw new ArgumentException(
                        $"codec '{text}': the warm-up must be a number of steps, e.g. topk:0.01:200"
                    );
                return new(CodecKind.TopK, Fraction(), WarmupSteps: warmup);
            case "powersgd":
                Arity(2);
                return
                    p.Length == 2
                    && int.TryParse(p[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int r)
                    && r > 0
                    ? new(CodecKind.PowerSgd, Rank: r)
                    : throw new ArgumentException($"codec '{text}' needs a positive rank, e.g. powersgd:2");
            default:
                throw new ArgumentException($"unknown codec '{text}': use {Grammar}");
        }
    }

    /// <summary>A new codec of this kind. <paramref name="seed"/> seeds the random ones (randomk, int8, powersgd), the
    /// same on every rank; <paramref name="momentum"/> is DGC's (the optimizer's momentum it takes over).</summary>
    public GradientCodec Create(ulong seed = 0, double momentum = 0.9) =>
        Kind switch
        {
            CodecKind.None => new NoneCodec(),
            CodecKind.Fp16 => new HalfCodec(bf16: false),
            CodecKind.Bf16 => new HalfCodec(bf16: true),
            CodecKind.TopK => WarmupSteps > 0 ? new TopKCodec(Fraction, WarmupSteps) : new TopKCodec(Fraction),
            CodecKind.RandomK => new RandomKCodec(Fraction, seed),
            CodecKind.Int8 => new Int8Codec(seed),
            CodecKind.Sign => new SignCodec(),
            CodecKind.PowerSgd => new PowerSgdCodec(Rank, seed),
            _ => new DgcCodec(Fraction, momentum),
        };

    /// <summary>The canonical spelling (what <see cref="Parse(string)"/> reads back).</summary>
    public override string ToString()
    {
        string f = Fraction.ToString("R", CultureInfo.InvariantCulture);
        return Kind switch
        {
            CodecKind.None => "none",
            CodecKind.Fp16 => "fp16",
            CodecKind.Bf16 => "bf16",
            CodecKind.TopK => WarmupSteps > 0
                ? $"topk:{f}:{WarmupSteps.ToString(CultureInfo.InvariantCulture)}"
                : $"topk:{f}",
            CodecKind.RandomK => $"randomk:{f}",
            CodecKind.Int8 => "int8",
            CodecKind.Sign => "sign",
            CodecKind.PowerSgd => $"powersgd:{Rank.ToString(CultureInfo.InvariantCulture)}",
            _ => $"dgc:{f}",
        };
    }

    static CodecSpec IParsable<CodecSpec>.Parse(string s, IFormatProvider? provider) => Parse(s);

    static bool IParsable<CodecSpec>.TryParse(
        [NotNullWhen(true)] string? s,
        IFormatProvider? provider,
        [MaybeNullWhen(false)] out CodecSpec result
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
