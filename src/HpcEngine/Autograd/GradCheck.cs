namespace HpcEngine.Autograd;

/// <summary>Result of a gradient check: the largest disagreement found, and where.</summary>
public sealed record GradCheckResult(bool Passed, string Report);

/// <summary>Compares the analytical gradients of a scalar function of float64 inputs with central differences (f(x +
/// eps) − f(x − eps)) / 2eps, element by element: the check every differentiable op passes in the tests.</summary>
public static class GradCheck
{
    /// <summary>Checks d sum(w ⊙ f(inputs)) / d inputs for a fixed random weighting w (so non-scalar outputs are
    /// covered in every component). Inputs must be float64 leaves that require grad.</summary>
    public static GradCheckResult Check(
        Func<Tensor[], Tensor> f,
        Tensor[] inputs,
        double eps = 1e-6,
        double atol = 1e-5,
        double rtol = 1e-3
    )
    {
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(inputs);
        foreach (var x in inputs)
            if (x.DType != DType.Float64)
                throw new DTypeMismatchException(
                    $"gradcheck needs float64 inputs; got {x.DType.TorchName()} of shape {Shapes.Format(x.Shape)}"
                );

        Tensor? weight = null;
        double Objective()
        {
            using var scope = new TensorScope();
            using var __ = GradMode.NoGrad();
            var y = f(inputs);
            weight ??= Tensor.Rand(y.ShapeArray, DType.Float64, new Generator(1234), 0.5, 1.5).DetachFromScope();
            using var wy = Ops.Mul(y, weight);
            using var s = Ops.Sum(wy);
            return s.Item();
        }

        Objective();
        foreach (var x in inputs)
            x.ZeroGrad();
        using (var scope = new TensorScope())
        {
            var y = f(inputs);
            var wy = Ops.Mul(y, weight!);
            var s = Ops.Sum(wy);
            s.Backward();
        }

        var report = new System.Text.StringBuilder();
        bool ok = true;
        for (int k = 0; k < inputs.Length; k++)
        {
            var x = inputs[k];
            if (!x.RequiresGrad)
                continue;
            var analytic = x.Grad?.ToArray<double>() ?? new double[x.NumEl];
            var contiguous = x.IsContiguous;
            for (int i = 0; i < x.NumEl; i++)
            {
                double orig = ReadFlat(x, i);
                WriteFlat(x, i, orig + eps);
                double fp = Objective();
                WriteFlat(x, i, orig - eps);
                double fm = Objective();
                WriteFlat(x, i, orig);
                double numeric = (fp - fm) / (2 * eps);
                double a = analytic[i];
                if (Math.Abs(a - numeric) > atol + rtol * Math.Abs(numeric) || double.IsNaN(a) != double.IsNaN(numeric))
                {
                    ok = false;
                    if (report.Length < 2000)
                        report.AppendLine(
                            $"input {k} {(contiguous ? "" : "(strided) ")}element {i}: analytic {a:G10} vs numeric {numeric:G10}"
                        );
                }
            }
        }
        weight?.Dispose();
        return new GradCheckResult(ok, ok ? "gradients match" : report.ToString());
    }

    private static int[] Unflatten(Tensor x, int i)
    {
        var idx = new int[x.Rank];
        for (int d = x.Rank - 1; d >= 0; d--)
        {
            idx[d] = i % x.Shape[d];
            i /= x.Shape[d];
        }
        return idx;
    }

    private static double ReadFlat(Tensor x, int i) => x[Unflatten(x, i)];

    private static unsafe void WriteFlat(Tensor x, int i, double v)
    {
        var idx = Unflatten(x, i);
        long off = 0;
        for (int d = 0; d < x.Rank; d++)
            off += (long)idx[d] * x.Strides[d];
        x.Ptr<double>()[off] = v;
    }
}
