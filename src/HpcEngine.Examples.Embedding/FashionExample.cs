using HpcEngine.Autograd;
using HpcEngine.Data;
using HpcEngine.Datasets;
using HpcEngine.IO;
using HpcEngine.NN;
using HpcEngine.Optim;

namespace HpcEngine.Examples.Embedding;

/// <summary>How another .NET tool uses the engine, with the public API only: build a model, train it on Fashion-MNIST
/// with a hand-written loop, save the weights, load them into a fresh model and predict a batch.</summary>
public static class FashionExample
{
    /// <summary>Runs the example; returns the fresh model's accuracy on the first 1,000 test images.</summary>
    public static double Run(string? dataDir, int epochs, string weightsPath, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(log);
        var (train, test, source) = DataSources.LoadFashionMnist(dataDir);
        using (train)
        using (test)
        {
            log.WriteLine($"data: {source}");

            // 1. A model: the same layers PyTorch would use, so the weights map name for name.
            var gen = new Generator(seed: 42);
            using var model = new Sequential(
                new Flatten(),
                new Linear(784, 128, generator: gen),
                new ReLU(),
                new Linear(128, 10, generator: gen)
            );
            using var optimizer = new Sgd(model.Parameters(), lr: 0.05, momentum: 0.9);
            var loader = new DataLoader(train, new DataLoaderOptions { BatchSize = 128, Seed = 42 });

            // 2. Train: each step in a TensorScope so its intermediates return to the pool.
            for (int epoch = 0; epoch < epochs; epoch++)
            {
                double lossSum = 0;
                int steps = 0;
                foreach (var batch in loader.Epoch(epoch))
                    using (batch)
                    using (new TensorScope())
                    {
                        var loss = F.CrossEntropy(model.Forward(batch.Inputs), batch.Labels);
                        loss.Backward();
                        optimizer.Step();
                        optimizer.ZeroGrad();
                        lossSum += loss.Item();
                        steps++;
                    }
                log.WriteLine($"epoch {epoch + 1}: mean loss {lossSum / steps:F4}");
            }

            // 3. Save the weights as safetensors (PyTorch can load them with safetensors.torch.load_file).
            Safetensors.Save(weightsPath, model.StateDict().ToDictionary(kv => kv.Key, kv => kv.Value));

            // 4. A fresh model, loaded from the file, predicts in eval mode without gradients.
            using var fresh = new Sequential(new Flatten(), new Linear(784, 128), new ReLU(), new Linear(128, 10));
            var weights = Safetensors.Load(weightsPath);
            fresh.LoadStateDict(weights);
            foreach (var w in weights.Values)
                w.Dispose();
            fresh.Eval();
            var first = new DataLoader(
                test,
                new DataLoaderOptions
                {
                    BatchSize = 1000,
                    Shuffle = false,
                    Prefetch = 0,
                }
            ).Epoch(0).First();
            using (first)
            using (GradMode.NoGrad())
            using (new TensorScope())
            {
                var predicted = fresh.Forward(first.Inputs).ArgMax(1).ToArray<long>();
                var labels = first.Labels.ToArray<long>();
                double accuracy = predicted.Zip(labels).Count(p => p.First == p.Second) / (double)labels.Length;
                log.WriteLine(
                    $"first test image: predicted '{FashionMnist.ClassNames[predicted[0]]}', label "
                        + $"'{FashionMnist.ClassNames[labels[0]]}'"
                );
                log.WriteLine($"accuracy of the reloaded model on {labels.Length} test images: {accuracy:F4}");
                return accuracy;
            }
        }
    }
}
