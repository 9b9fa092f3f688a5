using System.Text.Json;
using HpcEngine.IO;
using HpcEngine.NN;
using HpcEngine.Training;

namespace HpcEngine.Cli.Commands;

/// <summary>A model rebuilt from a checkpoint directory (or a bare .safetensors file with --model): the architecture
/// from the trainer file's config, the input shape and classes from the model file's metadata, the weights.</summary>
internal sealed record CheckpointModel(Module Module, ModelInput Input, string Weights, string Architecture)
{
    public static CheckpointModel Load(string checkpoint, string? model)
    {
        string weights;
        if (Directory.Exists(checkpoint))
        {
            var (m, t) = HpcEngine.Training.Checkpoint.Locate(checkpoint);
            if (m == null)
                throw new FileNotFoundException(
                    $"--checkpoint: '{checkpoint}' holds no checkpoint ({HpcEngine.Training.Checkpoint.PointerFile} is missing)"
                );
            weights = m;
            if (model == null)
            {
                using var tf = Safetensors.Open(t!);
                model = JsonSerializer.Deserialize<TrainConfig>(tf.Metadata["config"])!.Model;
            }
        }
        else if (File.Exists(checkpoint))
            weights = checkpoint;
        else
            throw new FileNotFoundException($"--checkpoint: '{checkpoint}' is neither a directory nor a file");
        if (model == null)
            throw new ArgumentException("--model is needed to load a bare .safetensors file");
        ModelInput input;
        using (var mf = Safetensors.Open(weights))
            input = ModelInput.Read(mf.Metadata);
        var net = Models.Create(model, null, input.SampleShape, input.Classes);
        try
        {
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
        }
        catch
        {
            net.Dispose();
            throw;
        }
        return new CheckpointModel(net, input, weights, model);
    }
}
