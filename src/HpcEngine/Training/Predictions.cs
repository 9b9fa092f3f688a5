using HpcEngine.Autograd;
using HpcEngine.Data;
using HpcEngine.NN;

namespace HpcEngine.Training;

/// <summary>A model's predictions over a dataset, in the dataset's order: the arg-max class and the softmax
/// probabilities of every sample.</summary>
public static class Predictions
{
    /// <summary>Runs <paramref name="model"/> in eval mode over <paramref name="data"/> (batches of
    /// <paramref name="batchSize"/>, no shuffle); the model's mode is restored.</summary>
    public static IReadOnlyList<(int Class, float[] Probabilities)> Of(Module model, Dataset data, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        bool wasTraining = model.Training;
        model.Eval();
        var device = model.Parameters().FirstOrDefault()?.Device ?? Device.Cpu;
        var loader = new DataLoader(
            data,
            new DataLoaderOptions
            {
                BatchSize = batchSize,
                Shuffle = false,
                Prefetch = 0,
            }
        );
        var result = new List<(int, float[])>(data.Count);
        try
        {
            using (GradMode.NoGrad())
                foreach (var batch in loader.Epoch(0))
                    using (batch)
                    using (new TensorScope())
                    {
                        using var x = batch.Inputs.To(device);
                        using var logits = model.Forward(x).To(Device.Cpu);
                        using var probabilities = F.Softmax(logits, 1);
                        var p = probabilities.ToArray<float>();
                        int k = logits.Shape[1];
                        for (int i = 0; i < batch.Size; i++)
                        {
                            var row = p.AsSpan(i * k, k).ToArray();
                            int best = 0;
                            for (int c = 1; c < k; c++)
                                if (row[c] > row[best])
                                    best = c;
                            result.Add((best, row));
                        }
                    }
        }
        finally
        {
            model.Train(wasTraining);
        }
        return result;
    }
}
