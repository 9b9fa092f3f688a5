using System.Text.Json;
using HpcEngine.IO;
using HpcEngine.NN;

namespace HpcEngine.Training;

/// <summary>A model rebuilt from a checkpoint: the architecture from the trainer file's config (or given, for a bare
/// model file), the input shape, classes and preprocessing from the model file's metadata (<see cref="ModelInput"/>),
/// and the weights. What predict, export and the inference server load.</summary>
public sealed record SavedModel(Module Module, ModelInput Input, string WeightsPath, string Architecture, string? Step)
{
    /// <summary>Loads the current checkpoint of a directory, or a model .safetensors file with
    /// <paramref name="architecture"/>; a path without a checkpoint is a <see cref="FileNotFoundException"/> saying
    /// so.</summary>
    public static SavedModel Load(string checkpoint, string? architecture = null)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        string weights;
        string? step = null;
        if (Directory.Exists(checkpoint))
        {
            var (model, trainer) = Checkpoint.Locate(checkpoint);
            if (model == null || trainer == null)
                throw new FileNotFoundException(
                    $"'{checkpoint}' holds no checkpoint ({Checkpoint.PointerFile} is missing): train with a checkpoint "
                        + "directory first"
                );
            weights = model;
            using var tf = Safetensors.Open(trainer);
            architecture ??= JsonSerializer.Deserialize<TrainConfig>(tf.Metadata["config"])!.Model;
            step = tf.Metadata.GetValueOrDefault("step");
        }
        else if (File.Exists(checkpoint))
            weights = checkpoint;
        else
            throw new FileNotFoundException($"'{checkpoint}' is neither a checkpoint directory nor a model file");
        if (architecture == null)
            throw new ArgumentException("a bare .safetensors file needs its architecture (mlp, mlp-wide, cnn) named");
        ModelInput input;
        using (var mf = Safetensors.Open(weights))
            input = ModelInput.Read(mf.Metadata);
        var net = Models.Create(architecture, null, input.SampleShape, input.Classes);
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
        return new SavedModel(net, input, weights, architecture, step);
    }
}
