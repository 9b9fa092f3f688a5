using System.Globalization;
using System.Reflection;
using System.Text;
using CommandLine;

namespace HpcEngine.Cli.Commands;

/// <summary>Which `bench` options each workload reads: `bench WORKLOAD --help` lists only those, and an option the
/// workload does not read is an error rather than silently ignored.</summary>
internal static class BenchWorkloads
{
    private static readonly string[] Kernel = ["size", "iters", "threads", "json"];

    public static readonly IReadOnlyDictionary<string, string[]> Options = new Dictionary<string, string[]>
    {
        ["gemm"] = Kernel,
        ["softmax"] = Kernel,
        ["layernorm"] = Kernel,
        ["add"] = Kernel,
        ["step"] = ["model", "batch-size", "optimizer", "profile", "iters", "threads", "json"],
        ["conv"] = ["batch-size", "iters", "threads", "json"],
        ["collectives"] =
        [
            "op",
            "transport",
            "min-bytes",
            "max-bytes",
            "factor",
            "warmup",
            "warmup-seconds",
            "iters",
            "check",
            "threads",
            "json",
        ],
        ["strategies"] =
        [
            "workers",
            "model",
            "strategies",
            "compress",
            "epochs",
            "batch-size",
            "data",
            "target-accuracy",
            "bandwidth",
            "latency",
            "straggler",
            "fault-plan",
            "max-restarts",
            "price-per-hour",
            "currency",
            "eval-every",
            "seed",
            "render",
            "out",
        ],
        ["parallel"] =
        [
            "mode",
            "ranks",
            "model",
            "batch-size",
            "schedule",
            "micro-batches",
            "iters",
            "threads",
            "json",
        ],
        ["gpu"] = ["peer", "iters", "json"],
        ["loader"] = ["data", "dataset", "batch-size", "iters", "json"],
        ["serve"] = ["url", "model", "concurrency", "requests", "warmup-seconds", "tensor-format", "token", "json"],
    };

    private static readonly string[] Summary =
    [
        "gemm|softmax|layernorm|add: one CPU kernel on an NxN float32 problem",
        "step: one full training step of a model",
        "conv: the cnn's convolution layers, forward, backward-data and backward-weight apart (GFLOP/s)",
        "collectives: the nccl-tests sweep over the engine's backend, shared memory or TCP per link (under hpcengine "
            + "launch or mpirun)",
        "strategies: the sync/async strategy x codec x workers matrix",
        "parallel: tensor-, pipeline- or data-parallel steps",
        "gpu: cuBLAS GEMM and the engine's kernels on cuda:0",
        "loader: training batches per second, Fashion-MNIST in memory against a prepared dataset's shards",
        "serve: closed-loop load on an inference server (hpcengine serve): throughput, latency percentiles, errors",
    ];

    private static IEnumerable<(OptionAttribute Option, object? Default)> AllOptions() =>
        typeof(BenchOptions)
            .GetProperties()
            .Select(p => p.GetCustomAttribute<OptionAttribute>())
            .Where(o => o != null)
            .Select(o => (o!, (object?)o!.Default));

    /// <summary>The help of one workload: its options only, without the "workload:" prefixes of the shared
    /// help.</summary>
    public static string Help(string workload)
    {
        var sb = new StringBuilder($"hpcengine bench {workload} [options]\n\n");
        foreach (var (opt, def) in AllOptions().Where(o => Options[workload].Contains(o.Option.LongName)))
        {
            string text = opt.HelpText;
            int colon = text.IndexOf(": ", StringComparison.Ordinal);
            if (colon > 0 && text[..colon].All(c => char.IsLower(c) || c is ' ' or '-' or ','))
                text = text[(colon + 2)..];
            string d = def != null ? $" (default {Convert.ToString(def, CultureInfo.InvariantCulture)})" : "";
            sb.Append(CultureInfo.InvariantCulture, $"  --{opt.LongName, -18} {text}{d}\n");
        }
        return sb.ToString();
    }

    /// <summary>The workloads and what each does (for `bench --help`).</summary>
    public static string Overview() =>
        "hpcengine bench WORKLOAD [options]; hpcengine bench WORKLOAD --help lists a workload's options\n\n"
        + string.Join("\n", Summary.Select(s => "  " + s))
        + "\n";

    /// <summary>An error naming the first option in <paramref name="args"/> that <paramref name="workload"/> does not
    /// read (null when all apply). Unknown options are left to the parser (it suggests a spelling).</summary>
    public static string? Misplaced(string workload, IEnumerable<string> args)
    {
        var known = AllOptions().Select(o => o.Option.LongName).ToHashSet(StringComparer.Ordinal);
        foreach (var a in args.TakeWhile(a => a != "--"))
        {
            if (!a.StartsWith("--", StringComparison.Ordinal))
                continue;
            string name = a[2..].Split('=')[0];
            if (name is "help" or "version" || !known.Contains(name) || Options[workload].Contains(name))
                continue;
            var users = Options.Where(kv => kv.Value.Contains(name)).Select(kv => kv.Key).ToList();
            return $"--{name} does not apply to bench {workload} (it is an option of bench {string.Join(", ", users)}); bench {workload} takes {string.Join(", ", Options[workload].Select(o => "--" + o))}";
        }
        return null;
    }
}
