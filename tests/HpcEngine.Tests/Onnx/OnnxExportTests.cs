using HpcEngine.Autograd;
using HpcEngine.Data;
using HpcEngine.NN;
using HpcEngine.Onnx;
using HpcEngine.Training;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace HpcEngine.Tests.Onnx;

/// <summary>The ONNX export checked by the real ONNX Runtime: logits agree with the engine's on the test set to 1e-5
/// (fp32) and the predicted classes are identical, for mlp, mlp-wide and cnn, with the normalisation inside the graph
/// or outside; an unsupported layer is named.</summary>
public class OnnxExportTests
{
    private string _dir = "";
    private ImageDataset _train = null!,
        _test = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _dir = TestSupport.TempDir("onnx");
        TestSupport.WriteTinyFashionMnist(_dir, 200, 100);
        (_train, _test) = FashionMnist.Load(_dir);
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _train.Dispose();
        _test.Dispose();
        Directory.Delete(_dir, true);
    }

    private static float[] EngineLogits(Module model, Dataset data)
    {
        model.Eval();
        var loader = new DataLoader(
            data,
            new DataLoaderOptions
            {
                BatchSize = data.Count,
                Shuffle = false,
                Prefetch = 0,
            }
        );
        using var batch = loader.Epoch(0).Single();
        using var noGrad = GradMode.NoGrad();
        using var logits = model.Forward(batch.Inputs);
        return logits.ToArray<float>();
    }

    private static float[] RuntimeLogits(byte[] onnx, float[] input, int[] shape)
    {
        using var session = new InferenceSession(onnx);
        Assert.That(session.InputMetadata.Keys.Single(), Is.EqualTo("input"));
        Assert.That(session.InputMetadata["input"].Dimensions[0], Is.EqualTo(-1), "dynamic batch");
        using var results = session.Run([
            NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(input, shape)),
        ]);
        return results.Single(r => r.Name == "logits").AsTensor<float>().ToArray();
    }

    private float[] Pixels(Dataset data) =>
        Enumerable.Range(0, data.Count).SelectMany(i => data.Sample(i).ToArray().Select(b => (float)b)).ToArray();

    [TestCase("mlp", true)]
    [TestCase("mlp-wide", false)]
    [TestCase("cnn", true)]
    [TestCase("cnn", false)]
    public void Onnx_runtime_gives_the_engines_logits_and_classes(string name, bool normalizationInGraph)
    {
        var config = TrainConfig.For(name) with { Epochs = 1, BatchSize = 32 };
        using var model = Models.Create(name, new Generator(3));
        // A little training so BatchNorm's running statistics are not their initial values.
        Trainer.Run(
            config with
            {
                CheckpointDir = Path.Combine(_dir, name + normalizationInGraph),
            },
            _train,
            _test,
            "tiny"
        );
        var state = HpcEngine.IO.Safetensors.Load(
            Checkpoint.Locate(Path.Combine(_dir, name + normalizationInGraph)).Model!
        );
        model.LoadStateDict(state);
        foreach (var t in state.Values)
            t.Dispose();
        var input = ModelInput.Of(_test);
        var onnx = OnnxExport.ToBytes(
            model,
            input,
            new OnnxExportOptions { IncludeNormalization = normalizationInGraph }
        );
        var expected = EngineLogits(model, _test);
        float[] feed;
        if (normalizationInGraph)
            feed = Pixels(_test);
        else
        {
            var loader = new DataLoader(
                _test,
                new DataLoaderOptions
                {
                    BatchSize = _test.Count,
                    Shuffle = false,
                    Prefetch = 0,
                }
            );
            using var batch = loader.Epoch(0).Single();
            feed = batch.Inputs.ToArray<float>();
        }
        var actual = RuntimeLogits(onnx, feed, [_test.Count, 1, 28, 28]);
        Assert.That(actual, Is.EqualTo(expected).Within(1e-5));
        int[] Argmax(float[] l) =>
            Enumerable
                .Range(0, l.Length / 10)
                .Select(r => Array.IndexOf(l, l.Skip(r * 10).Take(10).Max(), r * 10) - r * 10)
                .ToArray();
        Assert.That(Argmax(actual), Is.EqualTo(Argmax(expected)));
    }

    [Test]
    public void A_tabular_model_exports_with_feature_input()
    {
        var rng = new Random(1);
        var features = Enumerable.Range(0, 40 * 6).Select(_ => (float)rng.NextDouble()).ToArray();
        var labels = Enumerable.Range(0, 40).Select(i => (long)(i % 3)).ToArray();
        using var data = new FeatureDataset(features, labels, 6, 3);
        using var model = Models.Create("mlp", new Generator(1), [6], 3);
        var onnx = OnnxExport.ToBytes(model, ModelInput.Of(data));
        Assert.That(RuntimeLogits(onnx, features, [40, 6]), Is.EqualTo(EngineLogits(model, data)).Within(1e-5));
    }

    [Test]
    public void The_export_command_writes_a_file_the_runtime_loads_with_the_models_metadata()
    {
        string ck = Path.Combine(_dir, "cli-ck"),
            file = Path.Combine(_dir, "cli.onnx");
        Trainer.Run(
            TrainConfig.For("mlp") with
            {
                Epochs = 1,
                BatchSize = 32,
                CheckpointDir = ck,
            },
            _train,
            _test,
            "tiny"
        );
        var r = TestSupport.RunCli(["export", "--checkpoint", ck, "--onnx", file]);
        Assert.That(r.Exit, Is.EqualTo(0), r.Stderr);
        Assert.That(r.Stdout, Does.Contain("opset 17").And.Contain("(pixels 0..255)"));
        using var session = new InferenceSession(file);
        Assert.That(session.ModelMetadata.CustomMetadataMap["hpcengine.classes"], Does.Contain("Ankle boot"));
        Assert.That(session.ModelMetadata.CustomMetadataMap["hpcengine.input_kind"], Is.EqualTo("pixels 0..255"));
        var missing = TestSupport.RunCli(["export", "--checkpoint", _dir, "--onnx", file]);
        Assert.That(missing.Exit, Is.EqualTo(2));
        Assert.That(missing.Stderr, Does.Contain("holds no checkpoint"));
    }

    [Test]
    public void An_unsupported_layer_is_named()
    {
        using var model = new Sequential(new Flatten(), new Linear(784, 16), new LayerNorm(16), new Linear(16, 10));
        var e = Assert.Throws<OnnxExportException>(() => OnnxExport.ToBytes(model, new ModelInput()))!;
        Assert.That(e.Message, Does.Contain("layer 2 (LayerNorm) has no ONNX export"));
    }
}
