using CommandLine;
using CommandLine.Text;
using HpcEngine.Cli.Commands;

namespace HpcEngine.Cli;

/// <summary>The `hpcengine` command. `--help` and `--version` print to standard output and exit 0; bad arguments
/// and failures end in one line on stderr and a non-zero exit code (2 for bad input); a stack trace only with
/// HPCENGINE_DEBUG=1.</summary>
public static class Program
{
    private static readonly Type[] Verbs =
    [
        typeof(TrainOptions),
        typeof(PredictOptions),
        typeof(BenchOptions),
        typeof(LaunchOptions),
        typeof(InfoOptions),
        typeof(DataOptions),
        typeof(ServeOptionsVerb),
        typeof(ExportOptions),
    ];

    public static int Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        // A worker of `hpcengine launch` dies with its launcher, even a SIGKILLed one.
        HpcEngine.Distributed.Launch.ProcessControl.DieWithLauncher();
        args = CliArguments.Normalise(args);
        // `bench WORKLOAD`: the workload's own help, and no option it would ignore.
        if (args.Length >= 2 && args[0] == "bench" && BenchWorkloads.Options.ContainsKey(args[1]))
        {
            if (args.TakeWhile(a => a != "--").Contains("--help"))
            {
                Console.Out.Write(BenchWorkloads.Help(args[1]));
                return 0;
            }
            if (BenchWorkloads.Misplaced(args[1], args.Skip(2)) is { } misplaced)
            {
                Console.Error.WriteLine("hpcengine: error: " + misplaced);
                return 2;
            }
        }
        else if (args.Length >= 1 && args[0] == "bench" && (args.Length == 1 || args[1] == "--help"))
        {
            Console.Out.Write(BenchWorkloads.Overview());
            return args.Length == 1 ? 2 : 0;
        }
        var parser = new Parser(s =>
        {
            s.HelpWriter = null; // help and errors are written below: help to stdout, errors as one line
            s.CaseInsensitiveEnumValues = true;
            s.AutoVersion = true;
            s.EnableDashDash = true;
        });
        try
        {
            var parsed = parser.ParseArguments(args, Verbs);
            return parsed.MapResult(
                (TrainOptions o) => TrainCommand.Run(o),
                (LaunchOptions o) => LaunchCommand.Run(o),
                (PredictOptions o) => PredictCommand.Run(o),
                (BenchOptions o) => BenchCommand.Run(o),
                (InfoOptions o) => InfoCommand.Run(o),
                (DataOptions o) => DataCommand.Run(o),
                (ServeOptionsVerb o) => ServeCommand.Run(o),
                (ExportOptions o) => ExportCommand.Run(o),
                errors => ParseFailed(parsed, errors.ToList(), args)
            );
        }
        catch (Exception e) when (!CliEnvironment.Debug)
        {
            Console.Error.WriteLine($"hpcengine: error: {TrainFlags.Explain(e)}");
            if (FlightRecordOf(e) is { } record)
            {
                Console.Error.WriteLine("hpcengine: the last collectives (flight recorder):");
                foreach (var line in record.Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(8))
                    Console.Error.WriteLine("  " + line.TrimEnd());
            }
            if (StateLost(e))
            {
                Console.Error.WriteLine(
                    "hpcengine: the job's state is lost: under `hpcengine launch --elastic --max-restarts K` every "
                        + "worker restarts from the last checkpoint (give train --checkpoint-dir and --resume-if-exists)"
                );
                return HpcEngine.Distributed.Elastic.ElasticStateLostException.ExitCode;
            }
            return
                e
                    is ArgumentException
                        or FormatException
                        or TensorException
                        or IOException
                        or InvalidDataException
                        or System.Text.Json.JsonException
                        or KeyNotFoundException
                        or InvalidOperationException
                ? 2
                : 1;
        }
    }

    private static bool StateLost(Exception e)
    {
        for (Exception? x = e; x != null; x = x.InnerException)
            if (x is HpcEngine.Distributed.Elastic.ElasticStateLostException)
                return true;
        return e is AggregateException a && a.InnerExceptions.Any(StateLost);
    }

    private static string? FlightRecordOf(Exception e)
    {
        for (Exception? x = e; x != null; x = x.InnerException)
            if (x is HpcEngine.Distributed.CollectiveException { FlightRecord: { Length: > 0 } r })
                return r;
        return null;
    }

    /// <summary>Help and version requests print to stdout (exit 0); anything else is one line naming the problem, with
    /// a suggestion for a mistyped option or verb (exit 2).</summary>
    private static int ParseFailed(ParserResult<object> parsed, List<Error> errors, string[] args)
    {
        if (errors.Any(e => e is VersionRequestedError))
        {
            Console.Out.WriteLine(HeadingInfo.Default);
            return 0;
        }
        if (errors.Any(e => e is HelpRequestedError or HelpVerbRequestedError or NoVerbSelectedError))
        {
            var help = HelpText.AutoBuild(
                parsed,
                h =>
                {
                    h.AdditionalNewLineAfterOption = false;
                    h.AddDashesToOption = true;
                    return h;
                },
                e => e,
                verbsIndex: parsed.TypeInfo.Current == typeof(NullInstance)
            );
            Console.Out.WriteLine(help);
            return errors.Any(e => e is NoVerbSelectedError) && args.Length == 0 ? 2 : 0;
        }
        string verb = args.Length > 0 ? args[0] : "";
        Console.Error.WriteLine(
            "hpcengine: error: " + CliArguments.Describe(errors.First(), verb, parsed.TypeInfo.Current, Verbs)
        );
        return 2;
    }
}
