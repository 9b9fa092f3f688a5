using System.Diagnostics;
using HpcEngine.Autograd;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Cli.Commands;

/// <summary>`bench step --profile`: where a training step's time goes, op by op, forward and backward apart
/// (<see cref="OpProfile"/>), as a table and in the JSON result. Forward ops are charged the time since the previous
/// recorded op; what no op or section claims (the engine's gradient bookkeeping, scope disposal) is listed as
/// "unattributed".</summary>
internal static class StepProfile
{
    public static int Run(BenchOptions o, Module model, Optimizer opt, Tensor x, Tensor y)
    {
        using var profile = OpProfile.Start();
        void Step()
        {
            using var scope = new TensorScope();
            profile.Mark();
            var loss = F.CrossEntropy(model.Forward(x), y);
            loss.Backward();
            profile.Time("optimizer.step", "update", opt.Step);
            profile.Time("zero_grad", "update", opt.ZeroGrad);
        }
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 0.5)
            Step();
        profile.Clear();
        var total = Stopwatch.StartNew();
        for (int i = 0; i < o.Iters; i++)
            Step();
        double stepMs = total.Elapsed.TotalMilliseconds / o.Iters;
        var rows = profile
            .Entries.Select(e => new Row(e.Op, e.Phase, (double)e.Calls / o.Iters, e.Seconds * 1e3 / o.Iters))
            .ToList();
        double claimed = rows.Sum(r => r.Ms);
        rows.Add(new Row("unattributed", "", 0, Math.Max(0, stepMs - claimed)));
        Console.WriteLine(
            $"train step {o.Model} batch {o.BatchSize} {o.Optimizer}: {stepMs:F3} ms per step (mean of {o.Iters}, "
                + $"profiled), {KernelThreads.Count} threads"
        );
        Console.WriteLine($"{"op", -22} {"phase", -9} {"calls", 6} {"ms/step", 9} {"share", 7}");
        foreach (var r in rows)
            Console.WriteLine($"{r.Op, -22} {r.Phase, -9} {r.Calls, 6:0.##} {r.Ms, 9:F3} {r.Ms / stepMs * 100, 6:F1}%");
        foreach (var phase in new[] { "forward", "backward", "update" })
            Console.WriteLine($"{phase, -9} total {rows.Where(r => r.Phase == phase).Sum(r => r.Ms), 9:F3} ms");
        BenchCommand.WriteJson(
            o.Json,
            StepBench.Described(
                o,
                stepMs,
                new()
                {
                    ["profile"] = rows.Select(r => new Dictionary<string, object>
                        {
                            ["op"] = r.Op,
                            ["phase"] = r.Phase,
                            ["calls_per_step"] = r.Calls,
                            ["ms_per_step"] = Math.Round(r.Ms, 4),
                            ["share"] = Math.Round(r.Ms / stepMs, 4),
                        })
                        .ToList(),
                }
            )
        );
        return 0;
    }

    private sealed record Row(string Op, string Phase, double Calls, double Ms);
}
