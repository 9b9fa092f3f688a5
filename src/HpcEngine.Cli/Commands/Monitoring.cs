using HpcEngine.Serving;

namespace HpcEngine.Cli.Commands;

/// <summary>`train --metrics-port P` / `--dashboard`: this rank's monitor on P + its local rank (so the ranks of one
/// host do not collide), started before training and stopped after.</summary>
internal static class Monitoring
{
    /// <summary>The dashboard's port when only --dashboard is given (Ray's dashboard port).</summary>
    public const int DefaultDashboardPort = 8265;

    public static TrainingMonitor? Start(TrainOptions o, bool distributed)
    {
        if (o.MetricsPort == null && !o.Dashboard)
            return null;
        int local = distributed ? HpcEngine.Distributed.DistributedEnvironment.Resolve().LocalRank : 0;
        int rank = distributed ? HpcEngine.Distributed.DistributedEnvironment.Resolve().Rank : 0;
        int basePort = o.MetricsPort ?? DefaultDashboardPort;
        var monitor = TrainingMonitor
            .StartAsync(rank, o.MetricsHost, basePort == 0 ? 0 : basePort + local)
            .GetAwaiter()
            .GetResult();
        // Every rank says where its own endpoint is (the line observer only speaks for rank 0).
        Console.WriteLine(
            $"rank {rank}: metrics at {monitor.Address}metrics{(o.Dashboard ? $", dashboard at {monitor.Address}dashboard" : "")}"
        );
        return monitor;
    }
}
