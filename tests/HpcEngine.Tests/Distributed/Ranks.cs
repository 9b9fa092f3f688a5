using HpcEngine.Distributed;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Tests.Distributed;

/// <summary>Runs N ranks as threads of this process over real loopback TCP, each with its own store client and process
/// group, and fails the test if they do not all finish within the bound (a hang fails instead of stalling
/// CI).</summary>
internal static class Ranks
{
    public static void Run(int n, Action<TcpProcessGroup> body, TcpOptions? options = null, int timeoutSeconds = 60)
    {
        var errors = RunExpectingFailures(
            n,
            body,
            options ?? new TcpOptions { Timeout = TimeSpan.FromSeconds(30), ConnectTimeout = TimeSpan.FromSeconds(20) },
            timeoutSeconds
        );
        for (int r = 0; r < n; r++)
            if (errors[r] != null)
                Assert.Fail($"rank {r} failed: {errors[r]}");
    }

    /// <summary>Like <see cref="Run"/> but returns each rank's exception (null when it finished) instead of
    /// failing.</summary>
    public static Exception?[] RunExpectingFailures(
        int n,
        Action<TcpProcessGroup> body,
        TcpOptions options,
        int timeoutSeconds = 60
    ) => RunExpectingFailures(n, body, options, _ => options, timeoutSeconds);

    /// <summary>Ranks that stand for <paramref name="hosts"/> hosts of n / hosts ranks each (consecutive ranks share a
    /// host identity), so a one-process test sees a multi-host topology: shared memory inside a "host", TCP
    /// between.</summary>
    public static void RunOnHosts(
        int n,
        int hosts,
        Action<TcpProcessGroup> body,
        TcpOptions options,
        int timeoutSeconds = 60
    )
    {
        var errors = RunExpectingFailures(
            n,
            body,
            options,
            r => options with { HostIdentity = $"test-host-{r / (n / hosts)}" },
            timeoutSeconds
        );
        for (int r = 0; r < n; r++)
            if (errors[r] != null)
                Assert.Fail($"rank {r} failed: {errors[r]}");
    }

    private static Exception?[] RunExpectingFailures(
        int n,
        Action<TcpProcessGroup> body,
        TcpOptions storeOptions,
        Func<int, TcpOptions> optionsOf,
        int timeoutSeconds
    )
    {
        var options = storeOptions;
        using var server = TcpStore.Create("127.0.0.1", 0, isServer: true, new StoreOptions { Token = options.Token });
        int port = server.ServerPort!.Value;
        var errors = new Exception?[n];
        var threads = Enumerable
            .Range(0, n)
            .Select(r => new Thread(() =>
            {
                try
                {
                    using var store =
                        r == 0
                            ? null
                            : TcpStore.Create("127.0.0.1", port, false, new StoreOptions { Token = options.Token });
                    using var pg = TcpProcessGroup.Connect(r == 0 ? server : store!, r, n, optionsOf(r), prefix: "t");
                    body(pg);
                }
                catch (Exception e)
                {
                    errors[r] = e;
                }
            })
            {
                IsBackground = true,
            })
            .ToArray();
        foreach (var t in threads)
            t.Start();
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        foreach (var t in threads)
            if (!t.Join(deadline - DateTime.UtcNow > TimeSpan.Zero ? deadline - DateTime.UtcNow : TimeSpan.Zero))
                Assert.Fail($"ranks did not finish within {timeoutSeconds}s");
        return errors;
    }
}
