using System.Diagnostics;
using System.Reflection;
using System.Text.RegularExpressions;
using CommandLine;

namespace HpcEngine.Tests.Distributed;

/// <summary>The deployment recipes in docs/deploy stay true: every hpcengine flag they use is one the CLI has, the
/// sbatch script passes the real Slurm's <c>sbatch --test-only</c>, and the Kubernetes manifest is the Indexed Job and
/// headless Service it says it is.</summary>
[NonParallelizable]
public partial class DeployRecipeTests
{
    private static string Root() => TestSupport.RepositoryRoot();

    private static string Recipe(string relative) => Path.Combine(Root(), "docs", "deploy", relative);

    /// <summary>The long option names of an hpcengine verb.</summary>
    private static HashSet<string> Flags(string verb) =>
        typeof(HpcEngine.Cli.Program)
            .Assembly.GetTypes()
            .Where(t => t.GetCustomAttribute<VerbAttribute>()?.Name == verb)
            .SelectMany(t => t.GetProperties())
            .Select(p => p.GetCustomAttribute<OptionAttribute>()?.LongName)
            .Where(n => n != null)
            .Select(n => n!)
            .ToHashSet();

    [GeneratedRegex(@"--([a-z][a-z-]*)")]
    private static partial Regex Flag();

    /// <summary>The flags in the text of "hpcengine launch ... -- hpcengine train ...", split at the "--" that ends
    /// the launcher's.</summary>
    private static void AssertKnown(string command, string where)
    {
        int split = command.IndexOf(" -- ", StringComparison.Ordinal);
        Assert.That(split, Is.GreaterThan(0), $"{where}: no 'launch ... -- train' in {command}");
        foreach (var (verb, text) in new[] { ("launch", command[..split]), ("train", command[(split + 4)..]) })
        {
            var known = Flags(verb);
            var used = Flag().Matches(text).Select(m => m.Groups[1].Value).ToList();
            Assert.That(used, Is.Not.Empty, $"{where}: no {verb} flags found");
            Assert.That(
                used.Where(f => !known.Contains(f)),
                Is.Empty,
                $"{where}: flags `hpcengine {verb}` does not have"
            );
        }
    }

    [Test]
    public void The_sbatch_script_uses_only_flags_the_cli_has()
    {
        string text = File.ReadAllText(Recipe("slurm/train.sbatch"));
        var m = Regex.Match(text, @"exec (hpcengine launch.*?)\n'", RegexOptions.Singleline);
        Assert.That(m.Success, Is.True, "the srun block with hpcengine launch");
        AssertKnown(m.Groups[1].Value.Replace("\\\n", " ", StringComparison.Ordinal), "train.sbatch");
        Assert.That(text, Does.Contain("#SBATCH --requeue").And.Contain("#SBATCH --signal=B:TERM@"));
    }

    [Test]
    public void The_kubernetes_manifest_uses_only_flags_the_cli_has()
    {
        string text = File.ReadAllText(Recipe("k8s/hpcengine-train.yaml"));
        var args = Regex
            .Matches(text, @"^\s+- (--?\S*|hpcengine|launch|train)$", RegexOptions.Multiline)
            .Select(x => x.Groups[1].Value);
        AssertKnown(string.Join(' ', args), "hpcengine-train.yaml");
        Assert.That(text, Does.Contain("completionMode: Indexed").And.Contain("clusterIP: None"));
        Assert.That(text, Does.Contain("batch.kubernetes.io/job-completion-index"));
    }

    [Test]
    public void The_kubernetes_manifest_is_an_indexed_job_and_a_headless_service()
    {
        const string python = "/usr/bin/python3";
        if (!File.Exists(python))
            Assert.Ignore("python3 is not installed (its yaml module parses the manifest)");
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(
            "import sys, yaml\n"
                + "docs = list(yaml.safe_load_all(open(sys.argv[1])))\n"
                + "svc = [d for d in docs if d['kind'] == 'Service'][0]; job = [d for d in docs if d['kind'] == 'Job'][0]\n"
                + "spec = job['spec']; pod = spec['template']['spec']\n"
                + "assert svc['spec']['clusterIP'] == 'None'\n"
                + "assert spec['completionMode'] == 'Indexed' and spec['completions'] == spec['parallelism']\n"
                + "assert pod['subdomain'] == svc['metadata']['name']\n"
                + "args = pod['containers'][0]['args']; assert 'launch' in args and '--elastic' in args\n"
                + "print('ok', len(docs))"
        );
        psi.ArgumentList.Add(Recipe("k8s/hpcengine-train.yaml"));
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (output.Contains("No module named 'yaml'", StringComparison.Ordinal))
            Assert.Ignore("python3-yaml is not installed");
        Assert.That(output.Trim(), Is.EqualTo("ok 2"));
    }

    [Test, Category("Slurm")]
    public void The_real_slurm_accepts_the_sbatch_script()
    {
        using var slurm = SlurmCluster.Start();
        // One node here: the command line overrides the script's --nodes, as users do.
        string output = slurm.RunWithErrors("sbatch", "--test-only", "--nodes=1", Recipe("slurm/train.sbatch"));
        Assert.That(output, Does.Contain("to start at"), output);
    }
}
