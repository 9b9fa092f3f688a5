using HpcEngine.Benchmarks;
using ScottPlot;

namespace HpcEngine.Cli.Commands;

/// <summary>The strategy matrix's plots (ScottPlot), each as PNG and SVG: test accuracy against training time per run;
/// final accuracy against bytes per worker-step; throughput against workers when several worker counts ran.</summary>
internal static class StrategyPlots
{
    private const int Width = 1000,
        Height = 620;

    /// <summary>Draws what the runs allow; returns the PNG file names (relative to <paramref name="dir"/>).</summary>
    public static IReadOnlyList<string> Draw(
        string dir,
        IReadOnlyList<StrategyRunResult> runs,
        StrategyStudyConfig config
    )
    {
        var files = new List<string>();
        if (runs.Count == 0)
            return files;

        var time = NewPlot();
        foreach (var r in runs.Where(r => r.Curve.Count > 0))
        {
            var s = time.Add.Scatter(r.Curve.Select(p => p[0]).ToArray(), r.Curve.Select(p => p[1]).ToArray());
            s.LegendText = r.Label;
        }
        var target = time.Add.HorizontalLine(config.TargetAccuracy);
        target.LinePattern = LinePattern.Dashed;
        target.LegendText = $"target {config.TargetAccuracy:F2}";
        // A diverged run would squash the healthy curves into a band at the top: scale to the healthy runs.
        var healthy = runs.Where(r => r.Status == "ok" && r.Curve.Count > 0)
            .SelectMany(r => r.Curve.Select(p => p[1]))
            .ToArray();
        if (healthy.Length > 0)
            time.Axes.SetLimitsY(
                Math.Max(0, Math.Min(healthy.Min(), config.TargetAccuracy) - 0.03),
                Math.Min(1, healthy.Max() + 0.02)
            );
        time.Title($"Test accuracy against training time ({config.Model})");
        time.XLabel("training wall time (s)");
        time.YLabel("test accuracy");
        time.ShowLegend(Alignment.LowerRight);
        files.Add(Save(time, dir, "accuracy_vs_time"));

        var bytes = NewPlot();
        foreach (var r in runs.Where(r => r.BytesPerWorkerPerStep > 0))
        {
            var s = bytes.Add.Scatter(
                new[] { Math.Log10(r.BytesPerWorkerPerStep / 1e3) },
                new[] { r.FinalTestAccuracy }
            );
            s.LegendText = r.Label;
            s.MarkerSize = 12;
        }
        var finals = runs.Where(r => r.Status == "ok").Select(r => r.FinalTestAccuracy).ToArray();
        if (finals.Length > 0)
            bytes.Axes.SetLimitsY(Math.Max(0, finals.Min() - 0.02), Math.Min(1, finals.Max() + 0.01));
        bytes.Title("Final test accuracy against bytes on the wire (diverged runs off the scale)");
        bytes.XLabel("log10(KB per worker per step)");
        bytes.YLabel("final test accuracy");
        bytes.ShowLegend(Alignment.LowerRight);
        files.Add(Save(bytes, dir, "accuracy_vs_bytes"));

        if (config.Workers.Length > 1)
        {
            var scale = NewPlot();
            foreach (var g in runs.GroupBy(r => $"{r.Strategy} + {r.Codec}"))
            {
                var pts = g.OrderBy(r => r.Workers).ToArray();
                var s = scale.Add.Scatter(
                    pts.Select(r => (double)r.Workers).ToArray(),
                    pts.Select(r => r.SamplesPerSecond).ToArray()
                );
                s.LegendText = g.Key;
            }
            // Worker counts are integers: tick exactly those.
            var ticks = new ScottPlot.TickGenerators.NumericManual();
            foreach (int w in config.Workers.Order())
                ticks.AddMajor(w, w.ToString(System.Globalization.CultureInfo.InvariantCulture));
            scale.Axes.Bottom.TickGenerator = ticks;
            scale.Title("Throughput against workers");
            scale.XLabel("workers");
            scale.YLabel("samples / s");
            scale.ShowLegend(Alignment.UpperLeft);
            files.Add(Save(scale, dir, "throughput_vs_workers"));
        }
        return files;
    }

    /// <summary>A plot with a 20-colour palette: a matrix easily has more runs than the default palette's 10
    /// colours.</summary>
    private static Plot NewPlot()
    {
        var plot = new Plot();
        plot.Add.Palette = new ScottPlot.Palettes.Category20();
        return plot;
    }

    private static string Save(Plot plot, string dir, string name)
    {
        plot.SavePng(Path.Combine(dir, name + ".png"), Width, Height);
        plot.SaveSvg(Path.Combine(dir, name + ".svg"), Width, Height);
        return name + ".png";
    }
}
