using System.Diagnostics;
using System.Text.Json;
using CommandLine;
using HpcEngine.Autograd;

namespace HpcEngine.Cli.Commands;

[Verb("train", HelpText = "Demo until the training stack lands: fit an MLP to a synthetic 10-class problem and report accuracy.")]
public sealed class TrainDemoOptions
{
    [Option("epochs", Default = 5, HelpText = "Passes over the synthetic training set.")]
    public int Epochs { get; set; }

    [Option("batch-size", Default = 64, HelpText = "Samples per step.")]
    public int BatchSize { get; set; }

    [Option("lr", Default = 0.1, HelpText = "SGD learning rate.")]
    public double Lr { get; set; }

    [Option("seed", Default = 0UL, HelpText = "Seed of the data and the initialisation.")]
    public ulong Seed { get; set; }

    [Option("json", HelpText = "Write the summary as JSON to this file.")]
    public string? Json { get; set; }
}

/// <summary>A self-contained demo of the engine: 10 Gaussian clusters in 32 dimensions, an MLP 32-64-10 trained with
/// plain SGD written against the public tensor API. The real `train` (Fashion-MNIST, modules, optimizers,
/// checkpoints) replaces it with the training-stack issue.</summary>
internal static class TrainDemoCommand
{
    public static int Run(TrainDemoOptions o)
    {
        if (o.Epochs <= 0 || o.BatchSize <= 0 || o.Lr <= 0)
            throw new ArgumentException("--epochs, --batch-size and --lr must be positive");
        var gen = new Generator(o.Seed);
        const int dim = 32, classes = 10, train = 4096, test = 1024;
        using var centers = Tensor.Randn([classes, dim], DType.Float32, gen, std: 0.3);
        var (xTrain, yTrain) = Sample(centers, train, gen);
        var (xTest, yTest) = Sample(centers, test, gen);
        using var w1 = Init([64, dim], gen);
        using var b1 = Tensor.Zeros([64]).RequiresGrad_();
        using var w2 = Init([classes, 64], gen);
        using var b2 = Tensor.Zeros([classes]).RequiresGrad_();
        Tensor[] ps = [w1, b1, w2, b2];
        Tensor Forward(Tensor x) => Ops.Linear(F.Relu(Ops.Linear(x, w1, b1)), w2, b2);

        Console.WriteLine($"train demo: synthetic {classes}-class data, {train} train / {test} test samples, MLP {dim}-64-{classes}, SGD lr {o.Lr}");
        var total = Stopwatch.StartNew();
        int steps = train / o.BatchSize, done = 0;
        double acc = 0;
        for (int epoch = 1; epoch <= o.Epochs; epoch++)
        {
            double lossSum = 0;
            var epochTimer = Stopwatch.StartNew();
            for (int s = 0; s < steps; s++)
            {
                using var scope = new TensorScope();
                var x = xTrain.Narrow(0, s * o.BatchSize, o.BatchSize);
                var y = yTrain.Narrow(0, s * o.BatchSize, o.BatchSize);
                var loss = F.CrossEntropy(Forward(x), y);
                loss.Backward();
                lossSum += loss.Item();
                using (GradMode.NoGrad())
                    foreach (var p in ps) { p.AddInPlace(p.Grad!, -o.Lr); p.ZeroGrad(); }
                done++;
            }
            acc = Accuracy(Forward, xTest, yTest);
            double rate = steps * o.BatchSize / epochTimer.Elapsed.TotalSeconds;
            double eta = total.Elapsed.TotalSeconds / done * (o.Epochs * steps - done);
            Console.WriteLine($"epoch {epoch}/{o.Epochs}  loss {lossSum / steps:F4}  test acc {acc:F4}  {rate:F0} samples/s  ETA {eta:F1}s");
        }
        Console.WriteLine($"final test accuracy {acc:F4} after {o.Epochs} epochs in {total.Elapsed.TotalSeconds:F2}s");
        if (o.Json != null)
            File.WriteAllText(o.Json, JsonSerializer.Serialize(new { model = "demo-mlp", epochs = o.Epochs, final_test_accuracy = acc, train_time_s = total.Elapsed.TotalSeconds, data_source = "synthetic" }));
        foreach (var t in new[] { xTrain, yTrain, xTest, yTest }) t.Dispose();
        return 0;
    }

    private static Tensor Init(int[] shape, Generator gen)
    {
        double bound = 1 / Math.Sqrt(shape[1]);
        return Tensor.Rand(shape, DType.Float32, gen, -bound, bound).RequiresGrad_();
    }

    private static (Tensor X, Tensor Y) Sample(Tensor centers, int n, Generator gen)
    {
        using var labels = Tensor.Randint(0, centers.Shape[0], [n], generator: gen);
        using var noise = Tensor.Randn([n, centers.Shape[1]], DType.Float32, gen);
        using var mean = Ops.IndexSelect(centers, 0, labels);
        return (mean + noise, labels.Clone());
    }

    private static double Accuracy(Func<Tensor, Tensor> forward, Tensor x, Tensor y)
    {
        using var scope = new TensorScope();
        using var noGrad = GradMode.NoGrad();
        var pred = forward(x).ArgMax(1);
        return Ops.Eq(pred, y).To(DType.Float32).Mean().Item();
    }
}
