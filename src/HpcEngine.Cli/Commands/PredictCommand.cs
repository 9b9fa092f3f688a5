using System.Text.Json;
using CommandLine;
using HpcEngine.Data;
using HpcEngine.Datasets;
using HpcEngine.Datasets.Prepare;
using HpcEngine.NN;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

[Verb(
    "predict",
    HelpText = "Evaluate a saved model on a test set (Fashion-MNIST, or --dataset DIR), or score raw inputs (--input: "
        + "image files or a CSV file) with the model's training-time preprocessing."
)]
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

    [Option("dataset", HelpText = "Evaluate on the test split of this prepared dataset.")]
    public string? Dataset { get; set; }

    [Option(
        "input",
        Separator = ',',
        HelpText = "Raw inputs to score: image files (PNG/JPEG), or one CSV file with a header; preprocessed as at "
            + "training (the checkpoint carries the preprocessing)."
    )]
    public IEnumerable<string> Input { get; set; } = [];

    [Option("json", HelpText = "Write the result as JSON to this file.")]
    public string? Json { get; set; }
}

internal static class PredictCommand
{
    public static int Run(PredictOptions o)
    {
        var loaded = SavedModel.Load(o.Checkpoint, o.Model);
        using var net = loaded.Module;
        var inputs = o.Input.ToList();
        return inputs.Count > 0
            ? Score(o, net, loaded.Architecture, loaded.WeightsPath, loaded.Input, inputs)
            : Evaluate(o, net, loaded.Architecture, loaded.WeightsPath, loaded.Input);
    }

    private static int Evaluate(PredictOptions o, Module net, string model, string weights, ModelInput input)
    {
        var (train, test, source) = DataSources.LoadTraining(o.Data, o.Dataset);
        train.Dispose();
        using (test)
        {
            if (!test.SampleShape.SequenceEqual(input.SampleShape) || test.Classes != input.Classes)
                throw new Data.Sharded.DatasetException(
                    source,
                    Data.Sharded.DatasetProblem.ShapeMismatch,
                    $"samples [{string.Join(", ", test.SampleShape)}] in {test.Classes} classes; the model takes "
                        + $"[{string.Join(", ", input.SampleShape)}] in {input.Classes}"
                );
            var names = test.ClassNames
                ?? input.ClassNames
                ?? Enumerable.Range(0, test.Classes).Select(c => c.ToString()).ToList();
            var (acc, perClass) = Trainer.Evaluate(net, test);
            Console.WriteLine($"model {model} from {weights}; data {source}; {test.Count} test samples");
            Console.WriteLine($"test accuracy {acc:F4}");
            for (int c = 0; c < perClass.Length; c++)
                Console.WriteLine($"  {names[c], -12} {perClass[c]:F4}");
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
                            ["per_class_accuracy"] = names.Zip(perClass).ToDictionary(p => p.First, p => p.Second),
                        },
                        new JsonSerializerOptions { WriteIndented = true }
                    )
                );
        }
        return 0;
    }

    private static int Score(
        PredictOptions o,
        Module net,
        string model,
        string weights,
        ModelInput input,
        List<string> files
    )
    {
        var raw = RawInputs.FromJson(input.Preprocessing);
        bool csv = raw.Kind == "tabular";
        if (csv && files.Count != 1)
            throw new ArgumentException("--input: a tabular model scores one CSV file (its rows)");
        Dataset data;
        string[] names;
        bool labelled = false;
        if (csv)
        {
            var (rows, where, hasLabels) = raw.Rows(files[0]);
            (data, names, labelled) = (rows, where, hasLabels);
        }
        else
            (data, names) = (raw.Images(files, input.Classes), files.ToArray());
        using (data)
        {
            var predictions = Predictions.Of(net, data);
            var classNames = input.ClassNames ?? Enumerable.Range(0, input.Classes).Select(c => c.ToString()).ToList();
            int correct = 0;
            var results = new List<Dictionary<string, object>>();
            for (int i = 0; i < data.Count; i++)
            {
                var (label, p) = predictions[i];
                Console.WriteLine($"{names[i]}: {classNames[label]} (p = {p[label]:F4})");
                if (labelled && label == data.Label(i))
                    correct++;
                results.Add(
                    new Dictionary<string, object>
                    {
                        ["input"] = names[i],
                        ["class"] = classNames[label],
                        ["label"] = label,
                        ["probabilities"] = p,
                    }
                );
            }
            if (labelled)
                Console.WriteLine(
                    $"accuracy on the labelled rows {(double)correct / Math.Max(1, data.Count):F4} ({data.Count} rows)"
                );
            if (o.Json != null)
                File.WriteAllText(
                    o.Json,
                    JsonSerializer.Serialize(
                        new Dictionary<string, object>
                        {
                            ["model"] = model,
                            ["weights"] = weights,
                            ["predictions"] = results,
                        },
                        new JsonSerializerOptions { WriteIndented = true }
                    )
                );
        }
        return 0;
    }
}
