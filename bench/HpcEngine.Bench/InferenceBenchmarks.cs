using BenchmarkDotNet.Attributes;
using HpcEngine.Autograd;
using HpcEngine.NN;
using HpcEngine.Onnx;
using HpcEngine.Training;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace HpcEngine.Bench;

/// <summary>The serving benchmark's in-process speed reference: one forward pass of a model, the engine against ONNX
/// Runtime running the engine's own export, at batch 1 (what a server without batching runs per request) and 32 (what
/// dynamic batching runs at concurrency 32). <c>--filter '*Inference*'</c>.</summary>
[MemoryDiagnoser]
public class InferenceBenchmarks
{
    private Module _model = null!;
    private InferenceSession _session = null!;
    private Tensor _x = null!;
    private DenseTensor<float> _ortInput = null!;
    private IDisposable _noGrad = null!;

    [Params("mlp-wide", "cnn")]
    public string Model { get; set; } = "mlp-wide";

    [Params(1, 32)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _noGrad = GradMode.NoGrad();
        _model = Models.Create(Model, new Generator(1));
        _model.Eval();
        _session = new InferenceSession(
            OnnxExport.ToBytes(_model, new ModelInput(), new OnnxExportOptions { IncludeNormalization = false })
        );
        _x = Tensor.Randn([Batch, 1, 28, 28], DType.Float32, new Generator(2));
        _ortInput = new DenseTensor<float>(_x.ToArray<float>(), [Batch, 1, 28, 28]);
    }

    [Benchmark(Baseline = true)]
    public void Engine()
    {
        using var scope = new TensorScope();
        _model.Forward(_x).Dispose();
    }

    [Benchmark]
    public void OnnxRuntime()
    {
        using var r = _session.Run([NamedOnnxValue.CreateFromTensor("input", _ortInput)]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _session.Dispose();
        _model.Dispose();
        _x.Dispose();
        _noGrad.Dispose();
    }
}
