using System.Diagnostics;
using System.Globalization;
using HpcEngine.Distributed.Launch;

namespace HpcEngine.Training;

/// <summary>One injected fault: what happens to member <paramref name="Rank"/> right after it commits step
/// <paramref name="Step"/>.</summary>
/// <param name="Kind">kill (SIGKILL: a machine that is gone), stop (SIGSTOP for <paramref name="Seconds"/>, then
/// SIGCONT: a frozen process that wakes up) or term (SIGTERM: a spot machine's reclaim notice).</param>
/// <param name="Rank">The member id (the rank the launcher gave it).</param>
/// <param name="Step">The step after which the fault happens.</param>
/// <param name="Seconds">How long a stop lasts.</param>
public sealed record Fault(string Kind, int Rank, long Step, double Seconds);

/// <summary>Deterministic fault injection for tests and benchmarks (<c>train --fault-plan</c>): faults separated by
/// ';', each <c>KIND:key=value,...</c> — <c>kill:rank=2,step=120</c>, <c>stop:rank=1,step=200,seconds=5</c>,
/// <c>term:rank=3,step=50</c>. A bad
/// spec is a <see cref="FormatException"/> naming the part and the grammar.</summary>
public sealed record FaultPlan(IReadOnlyList<Fault> Faults)
{
    private const string Grammar =
        "faults separated by ';', each kill:rank=R,step=S, term:rank=R,step=S or stop:rank=R,step=S,seconds=T";

    /// <summary>Parses a plan (see the type's summary).</summary>
    public static FaultPlan Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var faults = new List<Fault>();
        foreach (var part in spec.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kindAndArgs = part.Split(':', 2);
            string kind = kindAndArgs[0];
            if (kind is not ("kill" or "stop" or "term") || kindAndArgs.Length < 2)
                throw new FormatException($"fault plan: '{part}' is not a fault ({Grammar})");
            var args = kindAndArgs[1]
                .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(a => a.Split('=', 2))
                .ToDictionary(
                    a => a[0],
                    a =>
                        a.Length == 2
                        && double.TryParse(a[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double v)
                            ? v
                            : throw new FormatException(
                                $"fault plan: '{part}': '{string.Join("=", a)}' is not key=number"
                            )
                );
            double Need(string key) =>
                args.TryGetValue(key, out double v) && v >= 0
                    ? v
                    : throw new FormatException($"fault plan: '{part}' needs {key}= (a number, 0 or more; {Grammar})");
            faults.Add(new Fault(kind, (int)Need("rank"), (long)Need("step"), kind == "stop" ? Need("seconds") : 0));
        }
        return new FaultPlan(faults);
    }
}

/// <summary>Carries out a <see cref="FaultPlan"/>'s faults for this member: on its own process, for real.</summary>
public sealed class FaultPlanObserver(FaultPlan plan, int memberId) : ITrainingObserver
{
    private readonly Fault[] _mine = plan.Faults.Where(f => f.Rank == memberId).ToArray();

    /// <inheritdoc/>
    public void OnStep(StepEvent step)
    {
        foreach (var f in _mine.Where(f => f.Step == step.Step))
        {
            int pid = Environment.ProcessId;
            if (f.Kind == "stop")
            {
                // Someone else must wake a stopped process: a detached shell sends SIGCONT after the pause.
                Process.Start(
                    new ProcessStartInfo(
                        "/bin/sh",
                        ["-c", $"sleep {f.Seconds.ToString(CultureInfo.InvariantCulture)}; kill -CONT {pid}"]
                    )
                    {
                        UseShellExecute = false,
                    }
                );
                ProcessControl.Signal(pid, ProcessControl.SigStop);
            }
            else
                ProcessControl.Signal(pid, f.Kind == "term" ? ProcessControl.SigTerm : ProcessControl.SigKill);
        }
    }
}
