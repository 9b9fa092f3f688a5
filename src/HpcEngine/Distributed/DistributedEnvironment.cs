using System.Globalization;
using HpcEngine.Distributed.Tcp;

namespace HpcEngine.Distributed;

/// <summary>Where this process stands in a job: rank, world size, local rank, and where rank 0's store
/// listens.</summary>
public sealed record DistributedEnvironment(
    int Rank,
    int WorldSize,
    int LocalRank,
    int LocalWorldSize,
    string MasterAddr,
    int MasterPort,
    string Source
)
{
    /// <summary>The store port used when the launcher (OpenMPI, PMI) provides none.</summary>
    public const int DefaultPort = 29500;

    /// <summary>The job id the store checks (see <see cref="StoreOptions.JobId"/>): the scheduler's, where it has one
    /// (Slurm: "slurm-JOB.STEP"); null otherwise (the launcher passes its own through HPCENGINE_JOB_ID).</summary>
    public string? JobId { get; init; }

    /// <summary>This process's environment variable <paramref name="name"/>: the launcher contract is read here (and
    /// by the launcher's process control) and nowhere else.</summary>
    internal static string? ProcessVariable(string name) => Environment.GetEnvironmentVariable(name);

    /// <summary>Whether this process joins a running elastic job (HPCENGINE_ELASTIC_JOIN=1, set by
    /// <c>hpcengine launch --elastic</c> on a worker it restarts) instead of starting one.</summary>
    public static bool JoinsElasticJob(Func<string, string?>? getenv = null) =>
        (getenv ?? ProcessVariable)("HPCENGINE_ELASTIC_JOIN") == "1";

    /// <summary>Whether the launcher serves the job's store itself (HPCENGINE_STORE_HOSTED=1, set by
    /// <c>hpcengine launch --elastic</c>), so rank 0 connects to it as every other rank does.</summary>
    public static bool StoreHostedByLauncher(Func<string, string?>? getenv = null) =>
        (getenv ?? ProcessVariable)("HPCENGINE_STORE_HOSTED") == "1";

    /// <summary>Whether this process is one rank of a job of several, as launched by hpcengine launch / torchrun
    /// (WORLD_SIZE), mpirun (OMPI_COMM_WORLD_SIZE), srun with more than one task (inside a job step: an sbatch script
    /// itself carries SLURM_NTASKS and SLURM_PROCID too, but is one process), or a PMI launcher (PMI_SIZE &gt;
    /// 1).</summary>
    public static bool IsPresent(Func<string, string?>? getenv = null)
    {
        getenv ??= ProcessVariable;
        bool Set(string k) => !string.IsNullOrEmpty(getenv(k));
        bool Many(string k) =>
            int.TryParse(getenv(k), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 1;
        return Set("WORLD_SIZE")
            || Set("OMPI_COMM_WORLD_SIZE")
            || (
                Set("SLURM_STEP_ID")
                && Set("SLURM_PROCID")
                && (Many("SLURM_STEP_NUM_TASKS") || (!Set("SLURM_STEP_NUM_TASKS") && Many("SLURM_NTASKS")))
            )
            || Many("PMI_SIZE");
    }

    /// <summary>Resolves the environment in this order: torchrun / Kubernetes PyTorchJob (RANK, WORLD_SIZE, LOCAL_RANK,
    /// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), OpenMPI (OMPI_COMM_WORLD_RANK / SIZE / LOCAL_RANK), Slurm inside an
    /// srun step (SLURM_PROCID, SLURM_STEP_NUM_TASKS or SLURM_NTASKS, SLURM_LOCALID; master = the first host of
    /// SLURM_STEP_NODELIST or SLURM_JOB_NODELIST unless MASTER_ADDR is set; port = MASTER_PORT, else one derived from
    /// the job and step ids so two steps on a node do not collide), PMI (PMI_RANK, PMI_SIZE). A partly set environment
    /// is an error that lists what is missing.</summary>
    public static DistributedEnvironment Resolve(Func<string, string?>? getenv = null)
    {
        getenv ??= ProcessVariable;
        string? Get(string k) => string.IsNullOrEmpty(getenv(k)) ? null : getenv(k);
        int Int(string k) =>
            int.TryParse(Get(k), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v >= 0
                ? v
                : throw new FormatException($"{k}='{Get(k)}' is not a non-negative integer");
        string addr = Get("MASTER_ADDR") ?? "127.0.0.1";
        int port = Get("MASTER_PORT") != null ? Int("MASTER_PORT") : DefaultPort;

        if (Get("RANK") != null || Get("WORLD_SIZE") != null)
        {
            var missing = new[] { "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT" }
                .Where(k => Get(k) == null)
                .ToArray();
            if (missing.Length > 0)
                throw new InvalidOperationException(
                    $"incomplete torchrun environment: {string.Join(", ", missing)} not set"
                );
            return Check(
                new(
                    Int("RANK"),
                    Int("WORLD_SIZE"),
                    Get("LOCAL_RANK") != null ? Int("LOCAL_RANK") : Int("RANK"),
                    Get("LOCAL_WORLD_SIZE") != null ? Int("LOCAL_WORLD_SIZE") : Int("WORLD_SIZE"),
                    addr,
                    port,
                    "torchrun"
                )
            );
        }
        if (Get("OMPI_COMM_WORLD_RANK") != null || Get("OMPI_COMM_WORLD_SIZE") != null)
        {
            var missing = new[] { "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE" }.Where(k => Get(k) == null).ToArray();
            if (missing.Length > 0)
                throw new InvalidOperationException(
                    $"incomplete OpenMPI environment: {string.Join(", ", missing)} not set"
                );
            return Check(
                new(
                    Int("OMPI_COMM_WORLD_RANK"),
                    Int("OMPI_COMM_WORLD_SIZE"),
                    Get("OMPI_COMM_WORLD_LOCAL_RANK") != null
                        ? Int("OMPI_COMM_WORLD_LOCAL_RANK")
                        : Int("OMPI_COMM_WORLD_RANK"),
                    Get("OMPI_COMM_WORLD_LOCAL_SIZE") != null
                        ? Int("OMPI_COMM_WORLD_LOCAL_SIZE")
                        : Int("OMPI_COMM_WORLD_SIZE"),
                    addr,
                    port,
                    "openmpi"
                )
            );
        }
        if (Get("SLURM_PROCID") != null || Get("SLURM_NTASKS") != null)
        {
            if (Get("SLURM_STEP_ID") == null && Get("SLURM_STEPID") == null)
                throw new InvalidOperationException(
                    "Slurm batch script without a job step: SLURM_NTASKS describes the allocation, not this process; "
                        + "start the ranks with srun (srun hpcengine train ...)"
                );
            string tasks = Get("SLURM_STEP_NUM_TASKS") != null ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS";
            var missing = new[] { "SLURM_PROCID", tasks }.Where(k => Get(k) == null).ToList();
            string? nodes = Get("SLURM_STEP_NODELIST") ?? Get("SLURM_JOB_NODELIST");
            if (Get("MASTER_ADDR") == null && nodes == null)
                missing.Add("SLURM_JOB_NODELIST (or MASTER_ADDR)");
            if (missing.Count > 0)
                throw new InvalidOperationException(
                    $"incomplete Slurm environment: {string.Join(", ", missing)} not set"
                );
            string master = Get("MASTER_ADDR") ?? FirstHost(nodes!);
            long job = Get("SLURM_JOB_ID") != null ? Int("SLURM_JOB_ID") : 0,
                stepId = Get("SLURM_STEP_ID") != null ? Int("SLURM_STEP_ID") : 0;
            int slurmPort = Get("MASTER_PORT") != null ? port : 20000 + (int)((job * 31 + stepId) % 20000);
            string? perNode = Get("SLURM_STEP_TASKS_PER_NODE")
                ?? Get("SLURM_TASKS_PER_NODE")
                ?? Get("SLURM_NTASKS_PER_NODE");
            return Check(
                new(
                    Int("SLURM_PROCID"),
                    Int(tasks),
                    Get("SLURM_LOCALID") != null ? Int("SLURM_LOCALID") : 0,
                    perNode != null && int.TryParse(perNode.Split('(', ',')[0], out int per) ? per : Int(tasks),
                    master,
                    slurmPort,
                    "slurm"
                )
                {
                    JobId = Get("SLURM_JOB_ID") != null ? $"slurm-{job}.{stepId}" : null,
                }
            );
        }
        if (Get("PMI_RANK") != null || Get("PMI_SIZE") != null)
        {
            var missing = new[] { "PMI_RANK", "PMI_SIZE" }.Where(k => Get(k) == null).ToArray();
            if (missing.Length > 0)
                throw new InvalidOperationException(
                    $"incomplete PMI environment: {string.Join(", ", missing)} not set"
                );
            return Check(new(Int("PMI_RANK"), Int("PMI_SIZE"), Int("PMI_RANK"), Int("PMI_SIZE"), addr, port, "pmi"));
        }
        throw new InvalidOperationException(
            "no distributed environment found: set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (or run under "
                + "hpcengine launch, mpirun or srun)"
        );
    }

    private static DistributedEnvironment Check(DistributedEnvironment e) =>
        e.Rank < e.WorldSize && e.WorldSize > 0
            ? e
            : throw new InvalidOperationException(
                $"{e.Source} environment: rank {e.Rank} is not below world size {e.WorldSize}"
            );

    /// <summary>The first host of a Slurm node list: "node[07-09,12],gpu3" → "node07".</summary>
    public static string FirstHost(string nodeList)
    {
        ArgumentNullException.ThrowIfNull(nodeList);
        int depth = 0,
            end = nodeList.Length;
        for (int i = 0; i < nodeList.Length; i++)
        {
            if (nodeList[i] == '[')
                depth++;
            else if (nodeList[i] == ']')
                depth--;
            else if (nodeList[i] == ',' && depth == 0)
            {
                end = i;
                break;
            }
        }
        var first = nodeList[..end];
        int open = first.IndexOf('[', StringComparison.Ordinal);
        if (open < 0)
            return first;
        var inner = first[(open + 1)..first.IndexOf(']', StringComparison.Ordinal)];
        var firstRange = inner.Split(',')[0].Split('-')[0];
        return first[..open] + firstRange;
    }
}

/// <summary>Creating process groups.</summary>
public static class ProcessGroups
{
    private static readonly Dictionary<string, Func<Device, TcpOptions, IProcessGroup>> Backends = new(
        StringComparer.Ordinal
    );

    /// <summary>Makes a collective backend available to <see cref="Create"/> by name; HpcEngine.Cuda's
    /// <c>CudaBackend.Register</c> registers "nccl". The factory gets the device the tensors live on and the TCP
    /// options (for the timeout and the store's token and job id).</summary>
    public static void RegisterBackend(string name, Func<Device, TcpOptions, IProcessGroup> create)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(create);
        lock (Backends)
            Backends[name] = create;
    }

    /// <summary>Joins the job of the environment with the named backend: "tcp" (CPU tensors directly, device tensors
    /// staged through host memory by <see cref="HostStagedProcessGroup"/>) or a registered one ("nccl": GPU tensors in
    /// place). <paramref name="tcp"/> defaults to <see cref="TcpOptions.FromEnvironment"/>.</summary>
    public static IProcessGroup Create(string backend, Device device, TcpOptions? tcp = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        tcp ??= TcpOptions.FromEnvironment(DistributedEnvironment.Resolve().MasterAddr);
        if (backend == "tcp")
            return device.Type == DeviceType.Cpu
                ? InitFromEnvironment(tcp)
                : new HostStagedProcessGroup(InitFromEnvironment(tcp));
        Func<Device, TcpOptions, IProcessGroup>? create;
        lock (Backends)
            Backends.TryGetValue(backend, out create);
        return create != null
            ? create(device, tcp)
            : throw new ArgumentException(
                $"unknown collective backend '{backend}': tcp{(Backends.Count > 0 ? ", " + string.Join(", ", Backends.Keys) : "")} (nccl registers itself with CudaBackend.Register)"
            );
    }

    /// <summary>Joins the job the environment describes (see <see cref="DistributedEnvironment.Resolve"/>) over TCP:
    /// rank 0 serves the store at MASTER_ADDR:MASTER_PORT, everyone rendezvous through it. Options come from
    /// <see cref="TcpOptions.FromEnvironment"/> unless given.</summary>
    public static TcpProcessGroup InitFromEnvironment(TcpOptions? options = null)
    {
        var env = DistributedEnvironment.Resolve();
        options ??= TcpOptions.FromEnvironment(env.MasterAddr);
        if (options.JobId == null && env.JobId != null)
            options = options with { JobId = env.JobId };
        return Init(env.Rank, env.WorldSize, env.MasterAddr, env.MasterPort, options);
    }

    /// <summary>Joins a TCP group from explicit arguments.</summary>
    public static TcpProcessGroup Init(
        int rank,
        int worldSize,
        string masterAddr,
        int masterPort,
        TcpOptions? options = null
    )
    {
        options ??= TcpOptions.FromEnvironment(masterAddr);
        var store = TcpStore.Create(
            masterAddr,
            masterPort,
            isServer: rank == 0,
            new StoreOptions { Token = options.Token, JobId = options.JobId },
            options.ConnectTimeout
        );
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
