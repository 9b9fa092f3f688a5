using CommandLine;
using HpcEngine.Cli.Commands;

namespace HpcEngine.Cli;

/// <summary>The `hpcengine` command. Bad arguments and failures end in one line on stderr and a non-zero exit code;
/// a stack trace only with HPCENGINE_DEBUG=1.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var parser = new Parser(s =>
        {
            s.HelpWriter = Console.Error;
            s.CaseInsensitiveEnumValues = true;
            s.AutoVersion = true;
            s.EnableDashDash = true;
        });
        try
        {
            return parser.ParseArguments<TrainOptions, PredictOptions, BenchOptions, LaunchOptions, InfoOptions>(args).MapResult(
                (TrainOptions o) => TrainCommand.Run(o),
                (LaunchOptions o) => LaunchCommand.Run(o),
                (PredictOptions o) => PredictCommand.Run(o),
                (BenchOptions o) => BenchCommand.Run(o),
                (InfoOptions o) => InfoCommand.Run(o),
                _ => 2);
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("HPCENGINE_DEBUG") != "1")
        {
            Console.Error.WriteLine($"hpcengine: error: {e.Message}");
            return e is ArgumentException or FormatException or TensorException or IOException or InvalidDataException or System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException ? 2 : 1;
        }
    }
}
