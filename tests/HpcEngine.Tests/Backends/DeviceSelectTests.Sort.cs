namespace HpcEngine.Tests.Backends;

using Ops = HpcEngine.Ops;

/// <summary>The scans, the sort and everything composed from it, and scatter, on the device: the CPU's values,
/// indices and gradients.</summary>
public abstract partial class DeviceSelectTests
{
    [Test]
    public void Scans_along_rows_and_leading_dims_with_gradients()
    {
        using var x = Randn([3, 7], 31);
        using var tall = Randn([40, 3], 32);
        Same("scan", t => Ops.CumSum(t[0], 1), x);
        Same("scan", t => Ops.CumSum(t[0], 0), tall);
        Same("scan", t => Ops.CumProd(t[0], 1), x);
        Same("scan", t => Ops.LogCumSumExp(t[0], 0), tall);
        Same("scan", t => Ops.CumMax(t[0], 1).Values, x);
        Same("scan", t => Ops.CumMin(t[0], 0).Indices, tall);
        Same("scan", t => Ops.Prod(t[0], 0), x);
        using var withZeros = Tensor.FromArray([2f, 0, 3, 0, 4, 1.5f], 1, 6);
        Same("scan", t => Ops.CumProd(t[0], 1), withZeros);
    }

    [Test]
    public void Sorts_and_their_selections_give_the_cpus_values_indices_and_gradients()
    {
        using var x = Randn([5, 9], 33);
        using var nan = Tensor.FromArray([3f, float.NaN, 1, 3, -2, float.NaN, 0.5f], 1, 7);
        Same("sort", t => Ops.Sort(t[0], 1).Values, x);
        Same("sort", t => Ops.Sort(t[0], 0, descending: true).Indices, x);
        Same("sort", t => Ops.ArgSort(t[0], 1, descending: true), nan);
        Same("sort", t => Ops.ArgSort(t[0], 1), nan);
        Same("sort", t => Ops.TopK(t[0], 3, dim: 1).Values, x);
        Same("sort", t => Ops.KthValue(t[0], 2, dim: 0).Values, x);
        Same("sort", t => Ops.Median(t[0], 1).Values, x);
        Same("sort", t => Ops.Median(t[0], 1).Indices, nan);
        Same("sort", t => Ops.NanMedian(t[0], 1).Values, nan);
        using var mask = Tensor.FromArray(new[] { true, false, false, true, true, false, true, false, true }, 9);
        Same("sort", t => Ops.MaskedSelect(t[0], t[1]), x, mask);
        using var ints = Tensor.FromArray([0f, 2, 0, 1, 3, 0], 2, 3);
        Same("sort", t => Ops.Nonzero(t[0]), ints);
        using var repeated = Tensor.FromArray([3f, 1, 2, 3, 1, 5, 3]);
        Same("sort", t => Ops.Unique(t[0]).Values, repeated);
        Same("sort", t => Ops.Unique(t[0], returnInverse: true).Inverse!, repeated);
        Same("sort", t => Ops.Unique(t[0], returnCounts: true).Counts!, repeated);
    }

    [Test]
    public void Transposed_convolution_with_groups_and_output_padding_and_its_gradients()
    {
        using var x = Randn([2, 4, 5, 4], 41);
        using var w = Randn([4, 3, 3, 3], 42);
        using var b = Randn([6], 43);
        Same(
            "col2im",
            t => F.ConvTranspose2d(t[0], t[1], t[2], stride: 2, padding: 1, outputPadding: 1, groups: 2),
            x,
            w,
            b
        );
        Same(
            "col2im",
            t => F.ConvTranspose2d(t[0], t[1], null, stride: 1, padding: 1, outputPadding: 1, dilation: 2),
            x,
            w
        );
    }

    [Test]
    public void Ceil_mode_pools_and_returned_indices()
    {
        using var x = Randn([2, 3, 7, 6], 46);
        Same("maxpool", t => F.MaxPool2d(t[0], 3, 2, padding: 1, ceilMode: true), x);
        Same("maxpool", t => F.MaxPool2dWithIndices(t[0], 2, ceilMode: true).Indices, x);
        Same("avgpool", t => F.AvgPool2d(t[0], 3, 2, padding: 1, countIncludePad: false, ceilMode: true), x);
    }

    [Test]
    public void Solve_inverse_det_and_cholesky_round_trip_through_the_host_with_gradients()
    {
        using var m = Randn([2, 3, 3], 47);
        using var eye = Tensor.Eye(3) * 3f;
        using var a = m + eye;
        using var b = Randn([2, 3, 2], 48);
        Same("host_to_device", t => Ops.Solve(t[0], t[1]), a, b);
        Same("host_to_device", t => Ops.Inverse(t[0]), a);
        Same("host_to_device", t => Ops.Det(t[0]), a);
        using var mt = Ops.Transpose(m, -2, -1);
        using var spd = Ops.MatMul(m, mt) + eye;
        Same("host_to_device", t => Ops.Cholesky(t[0]), spd);
    }

    [Test]
    public void Unfold_and_fold_with_gradients()
    {
        using var x = Randn([2, 3, 5, 6], 44);
        using var cols = Randn([2, 18, 12], 45);
        Same("im2col", t => F.Unfold(t[0], (2, 3), (1, 2), (1, 1), (2, 1)), x);
        Same("col2im", t => F.Fold(t[0], (5, 6), (2, 3), (1, 2), (1, 1), (2, 1)), cols);
    }

    [Test]
    public void Scatter_index_copy_and_take_along_dim_with_gradients()
    {
        using var x = Randn([3, 5], 34);
        using var index = Tensor.FromArray([4L, 0, 3, 2, 1, 0], 3, 2);
        using var src = Randn([3, 2], 35);
        Same("scatter", t => Ops.Scatter(t[0], 1, t[1], t[2]), x, index, src);
        Same("scatter", t => Ops.Scatter(t[0], 1, t[1], -1.5), x, index);
        using var cols = Tensor.FromArray([3L, 0]);
        Same("scatter", t => Ops.IndexCopy(t[0], 1, t[1], t[2]), x, cols, src);
        Same("gather", t => Ops.TakeAlongDim(t[0], t[1], 1), x, index);
        Same("gather", t => Ops.RepeatInterleave(t[0], 2, dim: 0), x);
    }

    [Test]
    public void Binary_math_functions_and_erfinv_with_broadcast_and_gradients()
    {
        using var a = Randn([3, 4], 36);
        using var b = Randn([4], 37);
        Same("binary", t => Ops.Atan2(t[0], t[1]), a, b);
        Same("binary", t => Ops.Fmod(t[0], t[1]), a, b);
        Same("binary", t => Ops.Remainder(t[0], t[1]), a, b);
        Same("binary", t => Ops.CopySign(t[0], t[1]), a, b);
        using var inside = Tensor.FromArray([-0.99f, -0.5f, 0, 0.3f, 0.9f]);
        Same("unary", t => Ops.Erfinv(t[0]), inside);
    }
}
