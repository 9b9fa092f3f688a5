using BenchmarkDotNet.Attributes;
using HpcEngine.Autograd;

namespace HpcEngine.Bench;

/// <summary>SGEMM through the public API (MatMul) at square sizes.</summary>
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private Tensor _a = null!,
        _b = null!;
    private IDisposable _noGrad = null!;

    [Params(256, 1024, 2048)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _noGrad = GradMode.NoGrad();
        _a = Tensor.Randn([N, N], DType.Float32, new Generator(1));
        _b = Tensor.Randn([N, N], DType.Float32, new Generator(2));
    }

    [Benchmark]
    public void MatMul() => _a.MatMul(_b).Dispose();

    [GlobalCleanup]
    public void Cleanup()
    {
        _a.Dispose();
        _b.Dispose();
        _noGrad.Dispose();
    }
}

/// <summary>Memory-bound row kernels on a 4096×4096 float32 matrix, and a broadcast add.</summary>
[MemoryDiagnoser]
public class RowKernelBenchmarks
{
    private Tensor _x = null!,
        _y = null!,
        _w = null!,
        _b = null!,
        _row = null!;
    private IDisposable _noGrad = null!;

    [GlobalSetup]
    public void Setup()
    {
        _noGrad = GradMode.NoGrad();
        _x = Tensor.Randn([4096, 4096], DType.Float32, new Generator(1));
        _y = Tensor.Randn([4096, 4096], DType.Float32, new Generator(2));
        _w = Tensor.Randn([4096], DType.Float32, new Generator(3));
        _b = Tensor.Randn([4096], DType.Float32, new Generator(4));
        _row = Tensor.Randn([4096], DType.Float32, new Generator(5));
    }

    [Benchmark]
    public void Softmax() => F.Softmax(_x, -1).Dispose();

    [Benchmark]
    public void LayerNorm() => F.LayerNorm(_x, [4096], _w, _b).Dispose();

    [Benchmark]
    public void Add() => (_x + _y).Dispose();

    [Benchmark]
    public void AddBroadcastRow() => (_x + _row).Dispose();

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _x, _y, _w, _b, _row })
            t.Dispose();
        _noGrad.Dispose();
    }
}

/// <summary>conv2d forward and backward at the Fashion-MNIST CNN's first layer shape.</summary>
[MemoryDiagnoser]
public class ConvBenchmarks
{
    private Tensor _x = null!,
        _w = null!,
        _bias = null!;

    [GlobalSetup]
    public void Setup()
    {
        _x = Tensor.Randn([128, 1, 28, 28], DType.Float32, new Generator(1));
        _w = Tensor.Randn([32, 1, 3, 3], DType.Float32, new Generator(2)).RequiresGrad_();
        _bias = Tensor.Zeros([32]).RequiresGrad_();
    }

    [Benchmark]
    public void Conv2dForwardBackward()
    {
        using var scope = new TensorScope();
        F.Conv2d(_x, _w, _bias, padding: 1).Sum().Backward();
        _w.ZeroGrad();
        _bias.ZeroGrad();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _x.Dispose();
        _w.Dispose();
        _bias.Dispose();
    }
}
