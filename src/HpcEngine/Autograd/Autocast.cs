namespace HpcEngine.Autograd;

/// <summary>Mixed precision on this thread: inside <c>using (Autocast.Bf16()) { ... }</c> every float32 matrix product
/// (matmul, linear, the convolutions' GEMMs — forward, and backward when <c>Backward()</c> runs inside the scope)
/// takes its operands rounded to bfloat16 and accumulates and returns float32. Softmax, norms, losses and the
/// parameters (the fp32 master weights the optimizer updates) stay float32. On a GPU the operands go to cuBLAS as bf16
/// (tensor cores); on the CPU they are rounded in place of that, so both devices compute the same products.</summary>
public static class Autocast
{
    [ThreadStatic]
    private static bool _bf16;

    /// <summary>True inside an <see cref="Bf16"/> scope.</summary>
    public static bool IsBf16 => _bf16;

    /// <summary>Turns bf16 GEMM operands on until the returned handle is disposed.</summary>
    public static IDisposable Bf16() => new Restore(true);

    /// <summary>Turns them off (full fp32) until the handle is disposed, e.g. for a numerically sensitive
    /// product.</summary>
    public static IDisposable Off() => new Restore(false);

    private sealed class Restore : IDisposable
    {
        private readonly bool _previous;
        private bool _done;

        public Restore(bool on)
        {
            _previous = _bf16;
            _bf16 = on;
        }

        public void Dispose()
        {
            if (_done)
                return;
            _done = true;
            _bf16 = _previous;
        }
    }
}
