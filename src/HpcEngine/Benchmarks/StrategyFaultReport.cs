using System.Globalization;
using System.Text;

namespace HpcEngine.Benchmarks;

/// <summary>report.md's section for a study under a fault plan: each run under faults beside its fault-free twin —
/// goodput (committed samples per second) and its ratio, the recovery time of every event, samples lost and the
/// accuracy difference.</summary>
internal static class StrategyFaultReport
{
    public static void Append(StringBuilder md, IReadOnlyList<StrategyRunResult> runs)
    {
        var faulty = runs.Where(r => r.Faults != null && r.Status != "failed").ToList();
        if (faulty.Count == 0)
            return;
        md.Append(CultureInfo.InvariantCulture, $"## Under faults: `{faulty[0].Faults}`\n\n");
        md.Append(
            "| strategy | codec | workers | goodput (samples/s) | fault-free goodput | ratio | events (kind member @step: recovery ms) | "
                + "samples lost | replicas agree | accuracy (fault-free) |\n"
        );
        md.Append("|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var r in faulty)
        {
            var twin = runs.FirstOrDefault(b =>
                b.Faults == null
                && b.Status != "failed"
                && b.Strategy == r.Strategy
                && b.Codec == r.Codec
                && b.Workers == r.Workers
            );
            string events =
                r.Membership.Count == 0
                    ? "none"
                    : string.Join(
                        ", ",
                        r.Membership.Select(e =>
                            string.Create(
                                CultureInfo.InvariantCulture,
                                $"{e.Kind} {e.Rank} @{e.Step}: {e.RecoveryMilliseconds:F0}"
                            )
                        )
                    );
            string ratio = twin != null ? (r.Goodput / twin.Goodput).ToString("P1", CultureInfo.InvariantCulture) : "–";
            md.Append(
                CultureInfo.InvariantCulture,
                $"| {r.Strategy} | {r.Codec} | {r.Workers} | {r.Goodput:F0} | {(twin != null ? twin.Goodput.ToString("F0", CultureInfo.InvariantCulture) : "–")} | {ratio} | {events} | {r.SamplesLost?.ToString(CultureInfo.InvariantCulture) ?? "–"} | {(r.ReplicasAgree is bool a ? (a ? "yes" : "NO") : "–")} | {r.FinalTestAccuracy:F4} ({(twin != null ? twin.FinalTestAccuracy.ToString("F4", CultureInfo.InvariantCulture) : "–")}) |\n"
            );
        }
        md.Append(
            "\nGoodput counts only committed samples (steps every member finished) over the training time; the "
                + "fault-free twin runs the same configuration, elastic too. Samples lost must be 0: the sampler deals "
                + "the epoch's rest over the new world size after every change.\n\n"
        );
    }
}
