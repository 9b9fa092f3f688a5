using HpcEngine.Autograd;

namespace HpcEngine.Optim;

/// <summary>Gradient utilities.</summary>
public static class GradClip
{
    /// <summary>Scales all gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm
    /// before clipping (as torch.nn.utils.clip_grad_norm_).</summary>
    public static double ClipGradNorm(IEnumerable<Tensor> parameters, double maxNorm)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var grads = parameters.Select(p => p.Grad).Where(g => g != null).Cast<Tensor>().ToArray();
        using var noGrad = GradMode.NoGrad();
        double sq = 0;
        foreach (var g in grads)
        {
            using var n = Ops.Norm(g);
            sq += n.Item() * n.Item();
        }
        double total = Math.Sqrt(sq);
        double coef = maxNorm / (total + 1e-6);
        if (coef < 1)
            foreach (var g in grads)
                g.MulInPlace(coef);
        return total;
    }
}
