using CommandLine;
using HpcEngine.Onnx;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

[Verb(
    "export",
    HelpText = "Export a checkpoint's model to ONNX (opset 17, dynamic batch; pixel models normalise inside the graph)."
)]
public sealed class ExportOptions
{
    [Option(
        "checkpoint",
        Required = true,
        HelpText = "A checkpoint directory, or a model .safetensors file with --model."
    )]
    public string Checkpoint { get; set; } = "";

    [Option("model", HelpText = "The architecture (read from the checkpoint when omitted).")]
    public string? Model { get; set; }

    [Option("onnx", Required = true, HelpText = "The .onnx file to write.")]
    public string Onnx { get; set; } = "";

    [Option(
        "no-normalization",
        HelpText = "Pixel models: take the normalised input, as the engine's model does, instead of pixels 0..255."
    )]
    public bool NoNormalization { get; set; }
}

internal static class ExportCommand
{
    public static int Run(ExportOptions o)
    {
        OutputPaths.CheckFile("--onnx", o.Onnx);
        var loaded = SavedModel.Load(o.Checkpoint, o.Model);
        using (loaded.Module)
            OnnxExport.Save(
                loaded.Module,
                loaded.Input,
                o.Onnx,
                new OnnxExportOptions { IncludeNormalization = !o.NoNormalization }
            );
        Console.WriteLine(
            $"{o.Onnx}: {loaded.Architecture} from {loaded.WeightsPath}, opset {OnnxExport.Opset}, input 'input' "
                + $"[batch, {string.Join(", ", loaded.Input.SampleShape)}]"
                + (loaded.Input.IsPixels && !o.NoNormalization ? " (pixels 0..255)" : "")
                + $", output 'logits' [batch, {loaded.Input.Classes}]"
        );
        return 0;
    }
}
