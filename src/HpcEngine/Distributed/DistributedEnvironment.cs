using System.Globalization;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Distributed;

/// <summary>Where this process stands in a job: rank, world size, local rank, and where rank 0's store listens.</summary>
public sealed record DistributedEnvironment(int Rank, int WorldSize, int LocalRank, int LocalWorldSize, string MasterAddr, int MasterPort, string Source)
{
    /// <summary>The store port used when the launcher (OpenMPI, Slurm, PMI) provides none.</summary>
    public const int DefaultPort = 29500;

    /// <summary>Resolves the environment in this order: torchrun / Kubernetes PyTorchJob (RANK, WORLD_SIZE,
    /// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), OpenMPI (OMPI_COMM_WORLD_RANK / SIZE / LOCAL_RANK),
    /// Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; master = the first host of SLURM_JOB_NODELIST unless
    /// MASTER_ADDR is set), PMI (PMI_RANK, PMI_SIZE). A partly set environment is an error that lists what is missing.</summary>
    public static DistributedEnvironment Resolve(Func<string, string?>? getenv = null)
    {
        getenv ??= Environment.GetEnvironmentVariable;
        string? Get(string k) => string.IsNullOrEmpty(getenv(k)) ? null : getenv(k);
        int Int(string k) => int.TryParse(Get(k), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= 0
            ? v : throw new FormatException($"{k}='{Get(k)}' is not a non-negative integer");
        string addr = Get("MASTER_ADDR") ?? "127.0.0.1";
        int port = Get("MASTER_PORT") != null ? Int("MASTER_PORT") : DefaultPort;

        if (Get("RANK") != null || Get("WORLD_SIZE") != null)
        {
            var missing = new[] { "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT" }.Where(k => Get(k) == null).ToArray();
            if (missing.Length > 0) throw new InvalidOperationException($"incomplete torchrun environment: {string.Join(", ", missing)} not set");
            return Check(new(Int("RANK"), Int("WORLD_SIZE"), Get("LOCAL_RANK") != null ? Int("LOCAL_RANK") : Int("RANK"),
                Get("LOCAL_WORLD_SIZE") != null ? Int("LOCAL_WORLD_SIZE") : Int("WORLD_SIZE"), addr, port, "torchrun"));
        }
        if (Get("OMPI_COMM_WORLD_RANK") != null || Get("OMPI_COMM_WORLD_SIZE") != null)
        {
            var missing = new[] { "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE" }.Where(k => Get(k) == null).ToArray();
            if (missing.Length > 0) throw new InvalidOperationException($"incomplete OpenMPI environment: {string.Join(", ", missing)} not set");
            return Check(new(Int("OMPI_COMM_WORLD_RANK"), Int("OMPI_COMM_WORLD_SIZE"),
                Get("OMPI_COMM_WORLD_LOCAL_RANK") != null ? Int("OMPI_COMM_WORLD_LOCAL_RANK") : Int("OMPI_COMM_WORLD_RANK"),
                Get("OMPI_COMM_WORLD_LOCAL_SIZE") != null ? Int("OMPI_COMM_WORLD_LOCAL_SIZE") : Int("OMPI_COMM_WORLD_SIZE"), addr, port, "openmpi"));
        }
        if (Get("SLURM_PROCID") != null || Get("SLURM_NTASKS") != null)
        {
            var missing = new[] { "SLURM_PROCID", "SLURM_NTASKS" }.Where(k => Get(k) == null).ToList();
            if (Get("MASTER_ADDR") == null && Get("SLURM_JOB_NODELIST") == null) missing.Add("SLURM_JOB_NODELIST (or MASTER_ADDR)");
            if (missing.Count > 0) throw new InvalidOperationException($"incomplete Slurm environment: {string.Join(", ", missing)} not set");
            string master = Get("MASTER_ADDR") ?? FirstHost(Get("SLURM_JOB_NODELIST")!);
            return Check(new(Int("SLURM_PROCID"), Int("SLURM_NTASKS"), Get("SLURM_LOCALID") != null ? Int("SLURM_LOCALID") : 0,
                Get("SLURM_NTASKS_PER_NODE") is { } t && int.TryParse(t.Split('(')[0], out int per) ? per : Int("SLURM_NTASKS"), master, port, "slurm"));
        }
        if (Get("PMI_RANK") != null || Get("PMI_SIZE") != null)
        {
            var missing = new[] { "PMI_RANK", "PMI_SIZE" }.Where(k => Get(k) == null).ToArray();
            if (missing.Length > 0) throw new InvalidOperationException($"incomplete PMI environment: {string.Join(", ", missing)} not set");
            return Check(new(Int("PMI_RANK"), Int("PMI_SIZE"), Int("PMI_RANK"), Int("PMI_SIZE"), addr, port, "pmi"));
        }
        throw new InvalidOperationException("no distributed environment found: set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (or run under hpcengine launch, mpirun or srun)");
    }

    private static DistributedEnvironment Check(DistributedEnvironment e) =>
        e.Rank < e.WorldSize && e.WorldSize > 0 ? e : throw new InvalidOperationException($"{e.Source} environment: rank {e.Rank} is not below world size {e.WorldSize}");

    /// <summary>The first host of a Slurm node list: "node[07-09,12],gpu3" → "node07".</summary>
    public static string FirstHost(string nodeList)
    {
        ArgumentNullException.ThrowIfNull(nodeList);
        int depth = 0, end = nodeList.Length;
        for (int i = 0; i < nodeList.Length; i++)
        {
            if (nodeList[i] == '[') depth++;
            else if (nodeList[i] == ']') depth--;
            else if (nodeList[i] == ',' && depth == 0) { end = i; break; }
        }
        var first = nodeList[..end];
        int open = first.IndexOf('[', StringComparison.Ordinal);
        if (open < 0) return first;
        var inner = first[(open + 1)..first.IndexOf(']', StringComparison.Ordinal)];
        var firstRange = inner.Split(',')[0].Split('-')[0];
        return first[..open] + firstRange;
    }
}

/// <summary>Creating process groups.</summary>
public static class ProcessGroups
{
    /// <summary>Joins the job the environment describes (see <see cref="DistributedEnvironment.Resolve"/>) over TCP:
    /// rank 0 serves the store at MASTER_ADDR:MASTER_PORT, everyone rendezvous through it. Options come from
    /// <see cref="TcpOptions.FromEnvironment"/> unless given.</summary>
    public static TcpProcessGroup InitFromEnvironment(TcpOptions? options = null)
    {
        var env = DistributedEnvironment.Resolve();
        return Init(env.Rank, env.WorldSize, env.MasterAddr, env.MasterPort, options ?? TcpOptions.FromEnvironment(env.MasterAddr));
    }

    /// <summary>Joins a TCP group from explicit arguments.</summary>
    public static TcpProcessGroup Init(int rank, int worldSize, string masterAddr, int masterPort, TcpOptions? options = null)
    {
        options ??= TcpOptions.FromEnvironment(masterAddr);
        var store = TcpStore.Create(masterAddr, masterPort, isServer: rank == 0, new StoreOptions { Token = options.Token, JobId = options.JobId }, options.ConnectTimeout);
        try
        {
            return TcpProcessGroup.Connect(store, rank, worldSize, options).OwnStore(store);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }
}
