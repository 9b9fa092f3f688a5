using HpcEngine.Autograd;

namespace HpcEngine.Tests.Autograd;

/// <summary>Float64 central-difference checks (eps 1e-6, atol 1e-5, rtol 1e-3) of every differentiable op,
/// over broadcast shapes, odd sizes and non-contiguous (permuted) inputs.</summary>
[TestFixture]
public class GradCheckTests
{
    /// <summary>An input spec: shape, whether it is a strided (permuted) view, and a value transform.</summary>
    public sealed record Input(int[] Shape, bool Strided = false, bool Positive = false, bool NoGrad = false);

    public sealed record Case(string Name, Func<Tensor[], Tensor> Fn, params Input[] Inputs)
    {
        public override string ToString() => Name;
    }

    private static Input S(params int[] shape) => new(shape);

    private static Input T(params int[] shape) => new(shape, Strided: true);

    private static Input P(params int[] shape) => new(shape, Positive: true);

    private static Tensor Idx(long[] v, params int[] shape) => Tensor.FromArray(v, shape);

    /// <summary>x + n·I: far from singular, so finite differences of a solve or inverse stay accurate.</summary>
    private static Tensor WellConditioned(Tensor x) => x + Tensor.Eye(x.Shape[^1], dtype: DType.Float64) * x.Shape[^1];

    /// <summary>x·xᵀ + n·I: symmetric positive definite whatever x is (a path cholesky's gradient goes through whole,
    /// as its formula assumes a symmetric perturbation).</summary>
    private static Tensor PositiveDefinite(Tensor x) =>
        x.MatMul(HpcEngine.Ops.Transpose(x, -2, -1)) + Tensor.Eye(x.Shape[^1], dtype: DType.Float64) * x.Shape[^1];

    public static IEnumerable<Case> Cases()
    {
        yield return new("add broadcast", x => x[0] + x[1], S(3, 1, 4), S(5, 1));
        yield return new("add strided", x => x[0] + x[1], T(3, 4), T(3, 4));
        yield return new("sub", x => x[0] - x[1], S(2, 3), S(3));
        yield return new("mul broadcast", x => x[0] * x[1], S(4, 1), T(1, 5));
        yield return new("div", x => x[0] / x[1], S(3, 2), P(2));
        yield return new("scalar ops", x => (2.0 - x[0]) * 3.0 / 4.0 + 1.0, S(5));
        yield return new("maximum", x => HpcEngine.Ops.Maximum(x[0], x[1]), S(7), S(7));
        yield return new("minimum", x => HpcEngine.Ops.Minimum(x[0], x[1]), S(2, 3), S(3));
        yield return new("pow tensor", x => HpcEngine.Ops.Pow(x[0], x[1]), P(5), S(5));
        yield return new("pow scalar", x => x[0].Pow(2.5), P(2, 3));
        yield return new("neg", x => -x[0], S(3));
        yield return new("abs", x => x[0].Abs(), S(7));
        yield return new("exp", x => x[0].Exp(), T(3, 5));
        yield return new("log", x => x[0].Log(), P(6));
        yield return new("log1p", x => x[0].Log1p(), P(6));
        yield return new("sin", x => x[0].Sin(), S(7));
        yield return new("cos", x => x[0].Cos(), S(7));
        yield return new("tan", x => (x[0] * 0.3).Tan(), T(2, 3));
        yield return new("asin", x => (x[0] * 0.3).Asin(), T(2, 3));
        yield return new("acos", x => (x[0] * 0.3).Acos(), T(2, 3));
        yield return new("atan", x => x[0].Atan(), S(7));
        yield return new("sinh", x => x[0].Sinh(), S(7));
        yield return new("cosh", x => x[0].Cosh(), S(7));
        yield return new("erf", x => x[0].Erf(), S(7));
        yield return new("expm1", x => x[0].Expm1(), S(7));
        yield return new("log2", x => x[0].Log2(), P(6));
        yield return new("log10", x => x[0].Log10(), P(6));
        yield return new("frac", x => x[0].Frac(), S(7));
        yield return new("amax dims", x => HpcEngine.Ops.Amax(x[0], [0, 2]), S(3, 4, 2));
        yield return new("vector norm 3", x => HpcEngine.Ops.VectorNorm(x[0], 3, [1]), S(3, 4));
        yield return new("vector norm 0.5", x => HpcEngine.Ops.VectorNorm(x[0], 0.5), P(5));
        yield return new("hypot", x => HpcEngine.Ops.Hypot(x[0], x[1]), S(2, 3), S(3));
        yield return new("lerp tensor", x => HpcEngine.Ops.Lerp(x[0], x[1], x[2]), S(2, 3), S(3), P(2, 1));
        yield return new("nan_to_num", x => HpcEngine.Ops.NanToNum(x[0]), S(6));
        yield return new("flip", x => HpcEngine.Ops.Flip(x[0], 1), T(3, 4));
        foreach (var c in ScanAndSortCases())
            yield return c;
        yield return new("roll", x => HpcEngine.Ops.Roll(x[0], [1, -2], [0, 1]), S(3, 4));
        yield return new("repeat", x => HpcEngine.Ops.Repeat(x[0], 2, 3), T(2, 3));
        yield return new("tril", x => HpcEngine.Ops.Tril(x[0]), S(3, 3));
        yield return new("addmm", x => HpcEngine.Ops.Addmm(x[0], x[1], x[2]), S(3), S(2, 4), S(4, 3));
        yield return new("normalize", x => F.Normalize(x[0]), S(2, 5));
        yield return new("cosine similarity", x => F.CosineSimilarity(x[0], x[1]), S(3, 4), S(3, 4));
        yield return new("rms norm", x => F.RmsNorm(x[0], [4], x[1]), S(3, 4), S(4));
        yield return new("group norm", x => F.GroupNorm(x[0], 2, x[1], x[2]), S(2, 4, 3), S(4), S(4));
        yield return new("pad reflect", x => F.Pad(x[0], [2, 1], "reflect"), S(2, 4));
        yield return new("pad constant crop", x => F.Pad(x[0], [-1, 2], "constant", 3), T(2, 4));
        yield return new("bilinear", x => F.Interpolate(x[0], size: [5, 3], mode: "bilinear"), S(1, 2, 3, 4));
        yield return new("sqrt", x => x[0].Sqrt(), P(6));
        yield return new("rsqrt", x => x[0].Rsqrt(), P(6));
        yield return new("tanh", x => x[0].Tanh(), S(9));
        yield return new("sigmoid", x => x[0].Sigmoid(), S(9));
        yield return new("relu", x => F.Relu(x[0]), S(11));
        yield return new("leaky_relu", x => F.LeakyRelu(x[0], 0.2), S(11));
        yield return new("gelu", x => F.Gelu(x[0]), S(11));
        yield return new("gelu tanh", x => F.Gelu(x[0], "tanh"), S(11));
        yield return new("silu", x => F.Silu(x[0]), S(11));
        yield return new("clamp", x => x[0].Clamp(-0.3, 0.4), S(13));
        yield return new("reciprocal", x => HpcEngine.Ops.Reciprocal(x[0]), P(5));
        yield return new("sum dims", x => x[0].Sum([0, 2], keepDim: false), T(3, 4, 5));
        yield return new("sum all", x => x[0].Sum(), S(0 + 3, 1));
        yield return new("mean", x => x[0].Mean([1], keepDim: true), S(2, 5, 3));
        yield return new("var", x => x[0].Var([0]), S(6, 2));
        yield return new("std", x => x[0].Std([1], correction: 0), S(3, 4));
        yield return new("logsumexp", x => HpcEngine.Ops.LogSumExp(x[0], [1]), T(3, 7));
        yield return new("norm2", x => x[0].Norm(), S(5));
        yield return new("norm1", x => HpcEngine.Ops.Norm(x[0], 1, [1]), S(2, 5));
        yield return new("max dim", x => x[0].Max(1).Values, S(3, 6));
        yield return new("min dim", x => x[0].Min(0, keepDim: true).Values, S(4, 3));
        yield return new("amax", x => x[0].Max(), S(3, 4));
        yield return new("matmul 2d", x => x[0].MatMul(x[1]), S(3, 5), S(5, 2));
        yield return new("matmul strided", x => x[0].MatMul(x[1]), T(4, 3), T(3, 5));
        yield return new("matmul batched broadcast", x => x[0].MatMul(x[1]), S(2, 1, 3, 4), S(3, 4, 2));
        yield return new("matmul vector", x => x[0].MatMul(x[1]), S(5), S(5, 3));
        yield return new("dot", x => x[0].MatMul(x[1]), S(7), S(7));
        yield return new("linear", x => HpcEngine.Ops.Linear(x[0], x[1], x[2]), S(2, 3, 5), S(4, 5), S(4));
        yield return new("softmax", x => F.Softmax(x[0], 1), S(3, 5, 2));
        yield return new("softmax strided", x => F.Softmax(x[0], -1), T(4, 6));
        yield return new("log_softmax", x => F.LogSoftmax(x[0], 0), S(5, 3));
        yield return new("layer_norm", x => F.LayerNorm(x[0], [5], x[1], x[2]), S(3, 5), S(5), S(5));
        yield return new("layer_norm 2d shape", x => F.LayerNorm(x[0], [2, 3]), T(4, 2, 3));
        yield return new("batch_norm", x => F.BatchNorm(x[0], null, null, x[1], x[2]), S(4, 3, 2, 2), S(3), S(3));
        yield return new("batch_norm 1d", x => F.BatchNorm(x[0], null, null, x[1], null), S(5, 3), S(3));
        // Planes of 35 values: the vectorised statistics and gradient loops and their scalar tails.
        yield return new(
            "batch_norm wide planes",
            x => F.BatchNorm(x[0], null, null, x[1], x[2]),
            S(3, 2, 5, 7),
            S(2),
            S(2)
        );
        yield return new("cross_entropy", x => F.CrossEntropy(x[0], Idx([1, 0, -100, 3], 4)), S(4, 5));
        yield return new(
            "cross_entropy smoothing",
            x => F.CrossEntropy(x[0], Idx([1, 0, 2, 3], 4), labelSmoothing: 0.2),
            S(4, 5)
        );
        yield return new("cross_entropy spatial", x => F.CrossEntropy(x[0], Idx([0, 1, 2, 1, 0, 2], 2, 3)), S(2, 3, 3));
        yield return new("nll_loss sum", x => F.NllLoss(x[0], Idx([2, 0, 1], 3), reduction: Reduction.Sum), S(3, 4));
        yield return new("mse_loss", x => F.MseLoss(x[0], x[1]), S(3, 4), S(3, 4));
        yield return new(
            "conv2d",
            x => F.Conv2d(x[0], x[1], x[2], stride: 2, padding: 1),
            S(2, 3, 5, 6),
            S(4, 3, 3, 3),
            S(4)
        );
        yield return new(
            "conv2d groups dilation",
            x => F.Conv2d(x[0], x[1], null, stride: 1, padding: 2, dilation: 2, groups: 2),
            S(1, 4, 5, 5),
            S(2, 2, 3, 2)
        );
        yield return new("max_pool2d", x => F.MaxPool2d(x[0], 2), S(2, 2, 4, 5));
        yield return new("max_pool2d padded", x => F.MaxPool2d(x[0], 3, 2, 1), S(1, 2, 5, 5));
        yield return new("avg_pool2d", x => F.AvgPool2d(x[0], 3, 2, 1), S(1, 2, 6, 5));
        yield return new("embedding", x => F.Embedding(Idx([0, 2, 2, 4], 2, 2), x[0]), S(5, 3));
        yield return new(
            "attention causal",
            x => F.ScaledDotProductAttention(x[0], x[1], x[2], isCausal: true),
            S(2, 4, 3),
            S(2, 4, 3),
            S(2, 4, 2)
        );
        yield return new("gather", x => HpcEngine.Ops.Gather(x[0], 1, Idx([0, 2, 2, 1, 0, 0], 2, 3)), S(2, 4));
        yield return new("index_select", x => HpcEngine.Ops.IndexSelect(x[0], 0, Idx([2, 0, 2], 3)), T(3, 4));
        yield return new(
            "scatter_add",
            x => HpcEngine.Ops.ScatterAdd(x[0], 1, Idx([0, 1, 0, 2, 2, 2], 2, 3), x[1]),
            S(2, 3),
            S(2, 3)
        );
        yield return new("cat", x => HpcEngine.Ops.Cat([x[0], x[1]], 0), S(2, 3), T(1, 3));
        yield return new("stack", x => HpcEngine.Ops.Stack([x[0], x[1]], -1), S(2, 3), S(2, 3));
        yield return new("split", x => HpcEngine.Ops.Split(x[0], [1, 3], 1)[1] * 2.0, S(2, 4));
        yield return new("chunk", x => HpcEngine.Ops.Chunk(x[0], 2, 0)[1], S(5, 2));
        yield return new("narrow", x => x[0].Narrow(1, 1, 2), S(3, 4));
        yield return new("slice step", x => HpcEngine.Ops.Slice(x[0], 0, 1, 6, 2), S(7, 2));
        yield return new("select", x => x[0].Select(1, 2), S(3, 4));
        yield return new("expand", x => x[0].Expand(3, 4, 2), S(4, 1));
        yield return new("squeeze unsqueeze", x => x[0].Squeeze().Unsqueeze(0), S(3, 1, 2));
        yield return new("permute", x => x[0].Permute(2, 0, 1), S(2, 3, 4));
        yield return new("transpose then reshape", x => x[0].Transpose(0, 1).Reshape(-1), S(3, 4));
        yield return new("flatten", x => x[0].Flatten(1), T(2, 3, 2));
        yield return new(
            "where",
            x => HpcEngine.Ops.Where(Tensor.FromArray([true, false, true]), x[0], x[1]),
            S(2, 3),
            S(3)
        );
        yield return new(
            "masked_fill",
            x => HpcEngine.Ops.MaskedFill(x[0], Tensor.FromArray([false, true, false, true]), 0.5),
            S(3, 4)
        );
        yield return new("dropout", x => F.Dropout(x[0], 0.4, training: true, generator: new Generator(7)), S(4, 5));
        yield return new("clone contiguous", x => x[0].Contiguous().Clone(), T(3, 4));
    }

    /// <summary>Scans, sorts and the selections and indexing built on them (random inputs: no ties).</summary>
    private static IEnumerable<Case> ScanAndSortCases()
    {
        var E = HpcEngine.Ops.Exp; // keeps the products away from 0 and their sign fixed
        yield return new("atan2 broadcast", x => HpcEngine.Ops.Atan2(x[0], x[1]), S(3, 4), T(4));
        yield return new("fmod", x => HpcEngine.Ops.Fmod(x[0], x[1]), S(2, 5), P(5));
        yield return new("remainder", x => HpcEngine.Ops.Remainder(x[0], x[1]), T(3, 2), P(2));
        yield return new("copysign", x => HpcEngine.Ops.CopySign(x[0], x[1]), S(2, 3), S(3));
        yield return new("erfinv", x => HpcEngine.Ops.Erfinv(HpcEngine.Ops.Tanh(x[0])), S(7));
        yield return new(
            "cross_entropy class weights",
            x => F.CrossEntropy(x[0], Idx([2, 0, -100, 1], 4), Tensor.FromArray([0.5, 2.0, 1.5]), labelSmoothing: 0.1),
            S(4, 3)
        );
        yield return new("cross_entropy soft targets", x => F.CrossEntropy(x[0], F.Softmax(x[1], 1)), T(3, 4), S(3, 4));
        yield return new(
            "cosine_embedding",
            x => F.CosineEmbeddingLoss(x[0], x[1], Tensor.FromArray([1.0, -1, -1]), margin: -0.5),
            S(3, 4),
            S(3, 4)
        );
        yield return new(
            "conv1d",
            x => F.Conv1d(x[0], x[1], x[2], stride: 2, padding: 1, groups: 2),
            S(2, 4, 7),
            S(4, 2, 3),
            S(4)
        );
        yield return new(
            "conv_transpose2d",
            x => F.ConvTranspose2d(x[0], x[1], x[2], stride: 2, padding: 1, outputPadding: 1, groups: 2),
            S(2, 4, 3, 3),
            S(4, 2, 3, 2),
            S(4)
        );
        yield return new(
            "conv_transpose2d dilated, output padding past the stride",
            x => F.ConvTranspose2d(x[0], x[1], null, stride: 1, padding: 1, outputPadding: 1, dilation: 2),
            S(1, 2, 4, 3),
            S(2, 3, 2, 2)
        );
        yield return new("unfold", x => F.Unfold(x[0], (2, 3), (2, 1), (1, 0), (1, 2)), S(2, 2, 5, 6));
        yield return new("fold", x => F.Fold(x[0], (4, 5), (2, 2), (1, 1), (1, 0), (2, 1)), S(1, 8, 12));
        yield return new(
            "max_pool2d ceil_mode",
            x => F.MaxPool2d(x[0], 3, 2, padding: 1, ceilMode: true),
            S(1, 2, 6, 5)
        );
        yield return new(
            "avg_pool2d ceil_mode exclude pad",
            x => F.AvgPool2d(x[0], 3, 2, padding: 1, countIncludePad: false, ceilMode: true),
            S(1, 2, 6, 5)
        );
        yield return new("solve", x => HpcEngine.Ops.Solve(WellConditioned(x[0]), x[1]), S(2, 3, 3), S(2, 3, 2));
        yield return new("solve vector", x => HpcEngine.Ops.Solve(WellConditioned(x[0]), x[1]), S(4, 4), S(4));
        yield return new("inverse", x => HpcEngine.Ops.Inverse(WellConditioned(x[0])), T(4, 4));
        yield return new("det", x => HpcEngine.Ops.Det(x[0]), S(2, 3, 3));
        yield return new("det 10x10 (through the inverse)", x => HpcEngine.Ops.Det(WellConditioned(x[0])), S(10, 10));
        yield return new("cholesky", x => HpcEngine.Ops.Cholesky(PositiveDefinite(x[0])), S(2, 4, 4));
        yield return new("cholesky upper", x => HpcEngine.Ops.Cholesky(PositiveDefinite(x[0]), upper: true), S(3, 3));
        yield return new(
            "einsum ellipsis broadcast",
            x => HpcEngine.Ops.Einsum("...ij,...jk", x),
            S(2, 1, 3, 2),
            T(2, 4)
        );
        yield return new("max_pool1d", x => F.MaxPool1d(x[0], 3, stride: 2, padding: 1), S(2, 2, 8));
        yield return new("avg_pool1d exclude pad", x => F.AvgPool1d(x[0], 3, 2, 1, countIncludePad: false), T(3, 8));
        yield return new("adaptive_avg_pool2d", x => F.AdaptiveAvgPool2d(x[0], (2, 3)), S(1, 2, 5, 7));
        yield return new("adaptive_max_pool2d", x => F.AdaptiveMaxPool2d(x[0], (3, 2)), S(1, 2, 5, 4));
        yield return new("prelu per channel", x => F.Prelu(x[0], x[1]), T(2, 3, 4), P(3));
        yield return new(
            "baddbmm",
            x => HpcEngine.Ops.Baddbmm(x[0], x[1], x[2], 0.5, 2),
            S(1, 3),
            S(2, 2, 4),
            T(2, 4, 3)
        );
        yield return new("kron", x => HpcEngine.Ops.Kron(x[0], x[1]), S(2, 3), T(2, 2));
        yield return new("cdist", x => HpcEngine.Ops.Cdist(x[0], x[1]), S(3, 4), S(2, 4));
        yield return new("matrix_norm inf", x => HpcEngine.Ops.MatrixNorm(x[0], "inf"), S(2, 3, 4));
        yield return new("einsum contraction", x => HpcEngine.Ops.Einsum("bij,jk->bki", x), T(2, 3, 4), S(4, 2));
        yield return new("einsum trace", x => HpcEngine.Ops.Einsum("ii->", x), S(3, 3));
        yield return new("cumsum strided", x => HpcEngine.Ops.CumSum(x[0], 0), T(3, 4));
        yield return new("cumprod", x => HpcEngine.Ops.CumProd(x[0], 1), S(2, 5));
        yield return new("cummax", x => HpcEngine.Ops.CumMax(x[0], 1).Values, S(3, 6));
        yield return new("cummin strided", x => HpcEngine.Ops.CumMin(x[0], 0).Values, T(4, 3));
        yield return new("logcumsumexp", x => HpcEngine.Ops.LogCumSumExp(x[0], 0), T(4, 3));
        yield return new("prod dim", x => HpcEngine.Ops.Prod(x[0], 1), S(3, 4));
        yield return new("prod all", x => HpcEngine.Ops.Prod(E(x[0])), S(5));
        yield return new("sort", x => HpcEngine.Ops.Sort(x[0], 1).Values, S(3, 5));
        yield return new("sort descending strided", x => HpcEngine.Ops.Sort(x[0], 0, true).Values, T(4, 3));
        yield return new("topk", x => HpcEngine.Ops.TopK(x[0], 3).Values, S(2, 7));
        yield return new("kthvalue", x => HpcEngine.Ops.KthValue(x[0], 2, 1, keepDim: true).Values, S(4, 5));
        yield return new("median dim", x => HpcEngine.Ops.Median(x[0], 0).Values, S(5, 3));
        yield return new("median all", x => HpcEngine.Ops.Median(x[0]), S(7));
        yield return new("nanmedian", x => HpcEngine.Ops.NanMedian(x[0], 1).Values, S(3, 4));
        yield return new("diagonal", x => HpcEngine.Ops.Diagonal(x[0], 1, 0, 2), T(3, 4, 5));
        yield return new("diag vector", x => HpcEngine.Ops.Diag(x[0], -1), S(4));
        yield return new("diag matrix", x => HpcEngine.Ops.Diag(x[0], 1), S(4, 5));
        yield return new("take_along_dim", x => HpcEngine.Ops.TakeAlongDim(x[0], Idx([2, 0, 1, 1], 1, 4), 0), S(3, 4));
        yield return new(
            "scatter",
            x => HpcEngine.Ops.Scatter(x[0], 1, Idx([4, 1, 0, 3], 2, 2), x[1]),
            S(2, 5),
            S(2, 2)
        );
        yield return new("scatter value", x => HpcEngine.Ops.Scatter(x[0], 0, Idx([1, 0], 1, 2), 2.0), S(3, 2));
        yield return new(
            "index_add",
            x => HpcEngine.Ops.IndexAdd(x[0], 1, Idx([2, 0, 2], 3), x[1], alpha: -0.5),
            S(2, 4),
            S(2, 3)
        );
        yield return new("index_copy", x => HpcEngine.Ops.IndexCopy(x[0], 0, Idx([2, 0], 2), x[1]), S(3, 2), T(2, 2));
        yield return new("repeat_interleave", x => HpcEngine.Ops.RepeatInterleave(x[0], [2, 0, 1], 1), S(2, 3));
        yield return new(
            "masked_select",
            x => HpcEngine.Ops.MaskedSelect(x[0], Tensor.FromArray([true, false, true])),
            T(4, 3)
        );
    }

    [TestCaseSource(nameof(Cases))]
    public void Gradient_matches_central_differences(Case c)
    {
        var gen = new Generator(42);
        var inputs = c.Inputs.Select(spec => MakeInput(spec, gen)).ToArray();
        var result = GradCheck.Check(c.Fn, inputs);
        Assert.That(result.Passed, Is.True, result.Report);
        foreach (var x in inputs)
        {
            x.ZeroGrad();
            x.Dispose();
        }
    }

    private static Tensor MakeInput(Input spec, Generator gen)
    {
        Tensor leaf;
        if (spec.Strided)
        {
            // Allocate the reversed shape and view it permuted: a non-contiguous leaf.
            var rev = spec.Shape.Reverse().ToArray();
            using var storage = Tensor.Randn(rev, DType.Float64, gen);
            leaf = storage.Permute(Enumerable.Range(0, rev.Length).Reverse().ToArray()).Detach();
            if (spec.Shape.Count(d => d > 1) >= 2)
                Assert.That(leaf.IsContiguous, Is.False, "strided input spec must give a non-contiguous leaf");
        }
        else if (spec.Positive)
            leaf = Tensor.Rand(spec.Shape, DType.Float64, gen, 0.5, 1.5);
        else
            leaf = Tensor.Randn(spec.Shape, DType.Float64, gen);
        leaf.RequiresGrad = !spec.NoGrad;
        return leaf;
    }

    [Test]
    public void Gradcheck_detects_a_wrong_gradient()
    {
        // A deliberately wrong rule (forward x^2, gradient of x^3) must fail the check: the checker can fail.
        using var x = Tensor.Randn([4], DType.Float64, new Generator(1)).RequiresGrad_();
        var result = GradCheck.Check(xs => WrongSquare(xs[0]), [x]);
        Assert.That(result.Passed, Is.False);
        Assert.That(result.Report, Does.Contain("analytic"));
    }

    private static Tensor WrongSquare(Tensor x)
    {
        using var sq = x * x;
        using var cube = x.Pow(3);
        using var detachedSq = sq.Detach();
        using var detachedCube = cube.Detach();
        // value = x^2, gradient = 3x^2 (from the cube term)
        using var diff = detachedSq - detachedCube;
        return cube + diff;
    }
}
