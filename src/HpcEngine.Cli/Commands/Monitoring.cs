using HpcEngine.Serving;

namespace HpcEngine.Cli.Commands;

/// <summary>`train --metrics-port P` / `--dashboard`: this rank's monitor on P + its local rank (so the ranks of one
/// host do not collide), started before training and stopped after.</summary>
internal static class Monitoring
{
    /// <summary>The dashboard's port when only --dashboard is given (Ray's dashboard port).</summary>
    public const int DefaultDashboardPort = 8265;

    public static TrainingMonitor? Start(TrainOptions o, bool distributed, HpcEngine.Distributed.Tcp.TcpOptions tcp)
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
        if (distributed)
            Publish(monitor, rank, tcp);
        // Every rank says where its own endpoint is (the line observer only speaks for rank 0).
        Console.WriteLine(
            $"rank {rank}: metrics at {monitor.Address}metrics{(o.Dashboard ? $", dashboard at {monitor.Address}dashboard" : "")}"
        );
        return monitor;
    }

    /// <summary>Puts this rank's monitor address in the job's store, over a connection of its own, so every rank's
    /// dashboard can draw all ranks. Monitoring never stops a run: a store that cannot be reached leaves this
    /// dashboard showing its own rank, and says so.</summary>
    private static void Publish(TrainingMonitor monitor, int rank, HpcEngine.Distributed.Tcp.TcpOptions tcp)
    {
        var env = HpcEngine.Distributed.DistributedEnvironment.Resolve();
        try
        {
            var store = HpcEngine.Distributed.TcpStore.Create(
                env.MasterAddr,
                env.MasterPort,
                isServer: false,
                new HpcEngine.Distributed.StoreOptions { Token = tcp.Token, JobId = tcp.JobId ?? env.JobId },
                tcp.ConnectTimeout
            );
            monitor.Directory = new MonitorDirectory(store, env.WorldSize);
            var address = monitor.Address;
            // A wildcard bind is reachable by this host's name, not by 0.0.0.0.
            if (address.Host is "0.0.0.0" or "[::]")
                address = new UriBuilder(address) { Host = System.Net.Dns.GetHostName() }.Uri;
            monitor.Directory.Publish(rank, address);
        }
        catch (Exception e)
            when (e
                    is IOException
                        or TimeoutException
                        or InvalidOperationException
                        or System.Net.Sockets.SocketException
            )
        {
            Console.Error.WriteLine($"rank {rank}: the dashboard shows this rank only (the job's store: {e.Message})");
        }
    }
}
