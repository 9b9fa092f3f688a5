using System.Text;
using System.Text.RegularExpressions;
using HpcEngine.Backends;
using HpcEngine.Cuda;
using HpcEngine.Cuda.Kernels;

namespace HpcEngine.Tests.Cuda;

using Ops = HpcEngine.Ops;

/// <summary>Every kernel launch the CUDA device backend makes — driven through training steps of every model and
/// through each op with a device path, on a recording stream (nothing runs, no GPU needed) — matches the kernel's
/// parameter list as NVRTC compiles it: the same number of parameters, and each argument of the parameter's kind
/// (f32 for float, 32- or 64-bit integers, structs of the exact byte size). A mismatch would pass garbage to the GPU
/// silently; here it fails by name.</summary>
[TestFixture]
[Category("Nvrtc")]
[NonParallelizable] // the backend registry is process-wide
public partial class KernelLaunchSignatureTests
{
    private RecordingCudaStream _stream = null!;
    private static readonly Device Dev = Device.External(0);

    [SetUp]
    public void Register()
    {
        if (HpcEngine.Cuda.Interop.CudaLibraries.Find("nvrtc") == null)
            Assert.Ignore("NVRTC is not installed; .ci/run installs Debian's libnvrtc11.2");
        _stream = new RecordingCudaStream();
        DeviceBackends.Register(DeviceType.External, new CudaDeviceBackend(_stream));
    }

    [TearDown]
    public void Unregister() => DeviceBackends.Unregister(DeviceType.External);

    [GeneratedRegex(@"\.entry\s+(\w+)\s*\(([^)]*)\)")]
    private static partial Regex Entry();

    [GeneratedRegex(@"\.param\s+(?:\.align\s+\d+\s+)?\.(\w+)\s+\w+(?:\[(\d+)\])?")]
    private static partial Regex Param();

    /// <summary>Kernel name → parameter kinds, from NVRTC's PTX of <paramref name="file"/>.</summary>
    private static Dictionary<string, string[]> Signatures(string file)
    {
        var ptx = Encoding.UTF8.GetString(NvrtcCompiler.Compile(file, KernelSources.Kernel(file), "compute_80").Image);
        var result = new Dictionary<string, string[]>();
        foreach (Match m in Entry().Matches(ptx))
            result[m.Groups[1].Value] = Param()
                .Matches(m.Groups[2].Value)
                .Select(p =>
                    p.Groups[1].Value switch
                    {
                        "f32" => "f32",
                        "f64" => "f64",
                        "u32" or "s32" or "b32" => "32",
                        "u64" or "s64" or "b64" => "64",
                        "b8" when p.Groups[2].Success => $"b8[{p.Groups[2].Value}]",
                        var other => other,
                    }
                )
                .ToArray();
        return result;
    }

    private static Tensor On(Tensor t) => t.To(Dev);

    /// <summary>Runs what the device path covers, so the backend launches its kernels.</summary>
    private static void Exercise()
    {
        var gen = new Generator(1);
        foreach (var (model, optimizer) in new[] { ("mlp", "adam"), ("cnn", "sgd"), ("gpt-mini", "sgd") })
        {
            using var m = HpcEngine.NN.Models.Create(model, gen);
            m.To(Dev);
            HpcEngine.Optim.Optimizer opt =
                optimizer == "adam"
                    ? new HpcEngine.Optim.Adam(m.Parameters(), lr: 1e-3)
                    : new HpcEngine.Optim.Sgd(m.Parameters(), lr: 0.1, momentum: 0.9);
            using var scope = new TensorScope();
            var x =
                model == "gpt-mini"
                    ? On(Tensor.FromArray(new long[2 * 16], 2, 16))
                    : On(Tensor.Randn([4, 1, 28, 28], DType.Float32, gen));
            var y = On(Tensor.FromArray(new long[model == "gpt-mini" ? 32 : 4]));
            var logits = m.Call(x);
            var loss = F.CrossEntropy(
                logits.Rank == 3 ? Ops.Reshape(logits, [-1, logits.Shape[2]]) : logits,
                y,
                labelSmoothing: 0.1
            );
            loss.Backward();
            opt.Step();
            opt.Dispose();
        }
        using (var scope = new TensorScope())
        {
            var a = On(Tensor.Randn([3, 5], DType.Float32, gen));
            var b = On(Tensor.Randn([5], DType.Float32, gen));
            var pos = Ops.AddScalar(Ops.Abs(a), 1);
            foreach (
                var op in new Func<Tensor, Tensor>[]
                {
                    Ops.Neg,
                    Ops.Abs,
                    Ops.Exp,
                    Ops.Log,
                    Ops.Log1p,
                    Ops.Sqrt,
                    Ops.Rsqrt,
                    Ops.Tanh,
                    Ops.Sigmoid,
                    Ops.Relu,
                    t => Ops.LeakyRelu(t, 0.1),
                    t => Ops.Gelu(t),
                    t => Ops.Gelu(t, "tanh"),
                    Ops.Silu,
                    t => Ops.Pow(t, 3),
                    Ops.Sign,
                    Ops.Reciprocal,
                    t => Ops.Clamp(t, -1, 1),
                    Ops.Sin,
                    Ops.Cos,
                    Ops.Tan,
                    Ops.Asin,
                    Ops.Acos,
                    Ops.Atan,
                    Ops.Sinh,
                    Ops.Cosh,
                    Ops.Erf,
                    Ops.Expm1,
                    Ops.Log2,
                    Ops.Log10,
                    Ops.Floor,
                    Ops.Ceil,
                    Ops.Round,
                    Ops.Trunc,
                    Ops.Erfinv,
                }
            )
            {
                var p = pos.Detach().RequiresGrad_();
                Ops.Sum(op(p)).Backward();
            }
            foreach (
                var op in new Func<Tensor, Tensor, Tensor>[]
                {
                    Ops.Add,
                    Ops.Sub,
                    Ops.Mul,
                    Ops.Div,
                    Ops.Maximum,
                    Ops.Minimum,
                    Ops.Pow,
                    Ops.Atan2,
                    Ops.Fmod,
                    Ops.Remainder,
                    Ops.CopySign,
                }
            )
            {
                op(a, b);
                op(pos, a);
            }
            foreach (var op in new Func<Tensor, Tensor, Tensor>[] { Ops.Eq, Ops.Lt, Ops.LogicalAnd })
                op(a, b);
            Ops.Eq(On(Tensor.FromArray([1L, 2])), On(Tensor.FromArray([1L, 3])));
            Ops.Eq(On(Tensor.FromArray([1, 2])), On(Tensor.FromArray([1, 3])));
            var cond = Ops.Gt(a, b);
            Ops.Where(cond, a, b);
            Ops.Where(cond, On(Tensor.FromArray(new long[15], 3, 5)), On(Tensor.FromArray(new long[15], 3, 5)));
            Ops.Max(a, 1);
            Ops.ArgMin(a, 0);
            Ops.LogSumExp(a, [1]);
            Ops.Var(a, [0]);
            var g = a.Detach().RequiresGrad_();
            Ops.Sum(Ops.Gather(g, 1, On(Tensor.FromArray(new long[6], 3, 2)))).Backward();
            Ops.Sum(Ops.IndexSelect(g, 0, On(Tensor.FromArray(new long[2])))).Backward();
            ExerciseScansAndSorts(a, gen);
            Tensor.Bernoulli([10], 0.5, DType.Float32, gen, Dev);
            F.Dropout(a, 0.3, generator: gen);
            var img = On(Tensor.Randn([2, 3, 6, 6], DType.Float32, gen)).RequiresGrad_();
            Ops.Sum(F.AvgPool2d(img, 2)).Backward();
            Ops.Sum(F.MaxPool2d(img, 2, 2, dilation: 2, ceilMode: true)).Backward(); // #16: dilation, ceil mode
            var up = On(Tensor.Randn([3, 2, 3, 3], DType.Float32, gen)).RequiresGrad_();
            Ops.Sum(F.ConvTranspose2d(img, up, stride: 2, padding: 1, outputPadding: 1)).Backward();
            Ops.Sum(F.Fold(F.Unfold(img, 2, stride: 2), (6, 6), 2, stride: 2)).Backward();
            var ln = a.Detach().RequiresGrad_();
            var w = b.Detach().RequiresGrad_();
            Ops.Sum(F.LayerNorm(ln, [5], w, w)).Backward();
            foreach (var dt in new[] { DType.BFloat16, DType.Float16, DType.Int64, DType.Int32, DType.Bool })
            {
                var c = a.To(dt);
                if (dt != DType.Bool)
                    c.To(DType.Float32);
            }
            On(Tensor.FromArray([1, 2])).To(DType.Int64).To(DType.Int32);
            cond.To(DType.Float32);
            cond.To(DType.Int64).To(DType.Bool);
            Ops.Transpose(On(Tensor.FromArray(new long[6], 2, 3)), 0, 1).Contiguous();
            Ops.Transpose(On(Tensor.FromArray(new byte[6], 2, 3)), 0, 1).Contiguous();
            Ops.Transpose(On(Tensor.FromArray(new long[6], 2, 3)).To(DType.BFloat16), 0, 1).Contiguous();
            using (HpcEngine.Autograd.Autocast.Bf16())
                Ops.MatMul(a, Ops.Transpose(a, 0, 1));
            Ops.Narrow(On(Tensor.Zeros([4, 4])), 1, 1, 2).Fill(3);
            var codecBackend = DeviceBackends.For(Dev);
            var values = On(Tensor.Randn([37], DType.Float32, gen));
            var scale = Ops.Mean(Ops.Abs(values));
            var message = Tensor.Empty([4 + 37], DType.UInt8, Dev);
            var decoded = Tensor.Empty([37], DType.Float32, Dev, zeroed: true);
            foreach (var format in new[] { MessageFormat.Sign, MessageFormat.Int8 })
            {
                codecBackend.EncodeMessage(format, values, scale, message, 1, 0);
                codecBackend.DecodeAddMessage(format, message, decoded);
            }
            a.To(DType.Float64).To(DType.Float32);
            var ls = a.Detach().RequiresGrad_();
            Ops.Sum(F.LogSoftmax(ls, 1)).Backward();
            foreach (var dt in new[] { DType.Int64, DType.BFloat16, DType.Bool })
            {
                var whole = On(Tensor.Zeros([4, 4], dt));
                whole.Fill(1);
                Ops.Narrow(whole, 1, 1, 2).CopyFrom(On(Tensor.Ones([4, 2], dt))); // a strided destination
            }
        }
    }

    /// <summary>Scans (row and strided-line kernels), the bitonic sort, and gather / scatter of 8-byte
    /// elements.</summary>
    private static void ExerciseScansAndSorts(Tensor a, Generator gen)
    {
        var s = a.Detach().RequiresGrad_();
        Ops.Sum(Ops.CumSum(s, 1)).Backward();
        Ops.CumMax(a, 1);
        Ops.LogCumSumExp(On(Tensor.Randn([40, 3], DType.Float32, gen)), 0);
        var t = a.Detach().RequiresGrad_();
        Ops.Sum(Ops.Sort(t, 1, descending: true).Values).Backward();
        using var longs = On(Tensor.FromArray(new long[6], 2, 3));
        Ops.Gather(longs, 1, On(Tensor.FromArray(new long[2], 2, 1)));
        Ops.Scatter(a, 1, On(Tensor.FromArray(new long[3], 3, 1)), 2.0);
        Ops.Scatter(longs, 1, On(Tensor.FromArray(new long[2], 2, 1)), 7.0);
    }

    [Test]
    public void Every_launch_matches_the_kernels_compiled_parameters()
    {
        Exercise();
        using (var x = On(Tensor.Randn([7, 3], DType.Float32, new Generator(2))))
        using (var graph = CudaGraph.Capture(_stream, () => F.Dropout(x, 0.5).Dispose(), warmup: 1))
            graph.Replay(); // a draw inside a graph reads its counter offset from the device
        Assert.That(_stream.Gemms, Is.GreaterThan(0));
        var signatures = new Dictionary<string, Dictionary<string, string[]>>();
        var checkedKernels = new HashSet<string>();
        foreach (var call in _stream.Launches)
        {
            var (file, name) = (call.File, call.Name);
            if (file == "")
                continue; // cuBLAS and copies
            if (!signatures.TryGetValue(file, out var sig))
                signatures[file] = sig = Signatures(file);
            Assert.That(sig, Does.ContainKey(name), $"{file} has no kernel {name}");
            var want = sig[name];
            var got = call.ArgTypes.Select(RecordingCudaStream.Kind).ToArray();
            Assert.That(
                got,
                Is.EqualTo(want),
                $"{file}:{name} is launched with ({string.Join(", ", got)}) but takes ({string.Join(", ", want)})"
            );
            checkedKernels.Add($"{file}:{name}");
        }
        TestContext.Out.WriteLine(
            $"{checkedKernels.Count} kernels checked: {string.Join(" ", checkedKernels.Order())}"
        );
        // Every kernel of the files the backend uses is launched by something above (none is dead or untested here).
        var never = signatures
            .SelectMany(f => f.Value.Keys.Select(k => $"{f.Key}:{k}"))
            .Where(k => !checkedKernels.Contains(k))
            .Order()
            .ToList();
        Assert.That(never, Is.Empty, "kernels the exercise never launches");
    }
}
