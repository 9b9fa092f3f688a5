using System.Diagnostics;
using System.Globalization;

namespace HpcEngine.Training;

/// <summary>Emulates a slower machine: after each forward and backward this rank sleeps (factor − 1) × the time they
/// took, so strategies can be compared with a straggler among the workers (<see cref="TrainConfig.Straggler"/>).
/// The delay goes into <paramref name="trace"/> when the run is traced.</summary>
public sealed class StragglerObserver(double factor, TraceObserver? trace = null) : ITrainingObserver
{
    /// <summary>The slow-down: 1.5 takes half as long again.</summary>
    public double Factor { get; } =
        factor >= 1 && double.IsFinite(factor)
            ? factor
            : throw new ArgumentOutOfRangeException(
                nameof(factor),
                factor,
                "a straggler's factor is a finite number of at least 1"
            );

    // The delay still owed: a sleep has millisecond grain, so a short step's delay is carried to the next one and the
    // total stays (factor − 1) × the total compute.
    private double _owedSeconds;

    /// <inheritdoc/>
    public void OnComputed(ComputeEvent compute)
    {
        _owedSeconds += compute.Seconds * (Factor - 1);
        if (_owedSeconds < 0.001)
            return;
        long start = Stopwatch.GetTimestamp();
        Thread.Sleep(TimeSpan.FromMilliseconds(Math.Floor(_owedSeconds * 1000)));
        double slept = Stopwatch.GetElapsedTime(start).TotalSeconds;
        _owedSeconds -= slept;
        trace?.Add("straggler delay", "compute", start, slept);
    }

    /// <summary>The slow-down factor a straggler spec ("RANK:FACTOR", e.g. "1:1.5") sets for <paramref name="rank"/> (1
    /// when the spec is null or empty, or for other ranks); an error when the spec is malformed or names a rank that a
    /// world of <paramref name="worldSize"/> does not have (a straggler that would silently not be applied).</summary>
    public static double FactorFor(int rank, int worldSize, string? spec)
    {
        if (string.IsNullOrEmpty(spec))
            return 1;
        var p = spec.Split(':');
        if (
            p.Length != 2
            || !int.TryParse(p[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out int r)
            || r < 0
            || !double.TryParse(p[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double f)
            || !(f >= 1)
            || !double.IsFinite(f)
        )
            throw new TrainConfigException(
                nameof(TrainConfig.Straggler),
                $"{{Straggler}} '{spec}' must be RANK:FACTOR with FACTOR >= 1, e.g. 1:1.5"
            );
        if (r >= worldSize)
            throw new TrainConfigException(
                nameof(TrainConfig.Straggler),
                $"{{Straggler}} '{spec}' names rank {r}, but the job has {worldSize} rank(s) (0..{worldSize - 1})"
            );
        return r == rank ? f : 1;
    }
}
