using System.Text.Json;
using CommandLine;
using HpcEngine.Data;
using HpcEngine.Datasets;
using HpcEngine.IO;
using HpcEngine.NN;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

[Verb("predict", HelpText = "Evaluate a saved model on the Fashion-MNIST test set: accuracy overall and per class.")]
public sealed class PredictOptions
{
    [Option(
        "checkpoint",
        Required = true,
        HelpText = "A checkpoint directory (from train --checkpoint-dir) or a model .safetensors file."
    )]
    public string Checkpoint { get; set; } = "";

    [Option(
        "model",
        HelpText = "The architecture (read from the checkpoint when omitted; needed for a bare .safetensors file)."
    )]
    public string? Model { get; set; }

    [Option(
        "data",
        HelpText = "Fashion-MNIST directory (else HPCENGINE_DATA, Debian's package, then the embedded subset)."
    )]
    public string? Data { get; set; }

    [Option("json", HelpText = "Write the result as JSON to this file.")]
    public string? Json { get; set; }
}

internal static class PredictCommand
{
    public static int Run(PredictOptions o)
    {
        string weights;
        string? model = o.Model;
        if (Directory.Exists(o.Checkpoint))
        {
            var (m, t) = HpcEngine.Training.Checkpoint.Locate(o.Checkpoint);
            if (m == null)
                throw new FileNotFoundException(
                    $"--checkpoint: '{o.Checkpoint}' holds no checkpoint ({HpcEngine.Training.Checkpoint.PointerFile} "
                        + $"is missing)"
                );
            weights = m;
            if (model == null)
            {
                using var tf = Safetensors.Open(t!);
                model = JsonSerializer.Deserialize<TrainConfig>(tf.Metadata["config"])!.Model;
            }
        }
        else if (File.Exists(o.Checkpoint))
            weights = o.Checkpoint;
        else
            throw new FileNotFoundException($"--checkpoint: '{o.Checkpoint}' is neither a directory nor a file");
        if (model == null)
            throw new ArgumentException("--model is needed to load a bare .safetensors file");

        using var net = Models.Create(model);
        var state = Safetensors.Load(weights);
        try
        {
            net.LoadStateDict(state);
        }
        finally
        {
            foreach (var t in state.Values)
                t.Dispose();
        }
        var (train, test, source) = DataSources.LoadFashionMnist(o.Data);
        train.Dispose();
        using (test)
        {
            var (acc, perClass) = Trainer.Evaluate(net, test);
            Console.WriteLine($"model {model} from {weights}; data {source}; {test.Count} test images");
            Console.WriteLine($"test accuracy {acc:F4}");
            for (int c = 0; c < perClass.Length; c++)
                Console.WriteLine($"  {FashionMnist.ClassNames[c], -12} {perClass[c]:F4}");
            if (o.Json != null)
                File.WriteAllText(
                    o.Json,
                    JsonSerializer.Serialize(
                        new Dictionary<string, object>
                        {
                            ["model"] = model,
                            ["weights"] = weights,
                            ["data_source"] = source,
                            ["test_accuracy"] = acc,
                            ["per_class_accuracy"] = FashionMnist
                                .ClassNames.Zip(perClass)
                                .ToDictionary(p => p.First, p => p.Second),
                        },
                        new JsonSerializerOptions { WriteIndented = true }
                    )
                );
        }
        return 0;
    }
}
