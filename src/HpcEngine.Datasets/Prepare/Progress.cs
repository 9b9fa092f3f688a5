using System.Diagnostics;

namespace HpcEngine.Datasets.Prepare;

/// <summary>Progress of a long stage, reported at most once a second: done/total, samples/s and the ETA.</summary>
internal sealed class Progress(string stage, long total, Action<string>? log)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _done;
    private long _lastReport;

    public void Add(long n)
    {
        long done = Interlocked.Add(ref _done, n);
        long now = _clock.ElapsedMilliseconds;
        long last = Interlocked.Read(ref _lastReport);
        if (log == null || now - last < 1000 || Interlocked.CompareExchange(ref _lastReport, now, last) != last)
            return;
        double rate = done / Math.Max(1e-9, _clock.Elapsed.TotalSeconds);
        double eta = rate > 0 ? (total - done) / rate : double.NaN;
        log($"{stage}: {done}/{total} ({rate:F0} samples/s, ETA {eta:F0} s)");
    }

    /// <summary>The stage's rate over its whole run.</summary>
    public double Rate => _done / Math.Max(1e-9, _clock.Elapsed.TotalSeconds);

    public double Seconds => _clock.Elapsed.TotalSeconds;
}
