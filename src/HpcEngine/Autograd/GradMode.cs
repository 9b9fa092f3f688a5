namespace HpcEngine.Autograd;

/// <summary>Whether ops record the graph on this thread. Disable it for inference and optimizer updates:
/// <c>using (GradMode.NoGrad()) { ... }</c>.</summary>
public static class GradMode
{
    [ThreadStatic]
    private static bool _disabled;

    /// <summary>True when ops record the autograd graph (the default).</summary>
    public static bool IsEnabled => !_disabled;

    /// <summary>Turns graph recording off until the returned handle is disposed.</summary>
    public static IDisposable NoGrad() => new Restore(enabled: false);

    /// <summary>Turns graph recording on until the returned handle is disposed.</summary>
    public static IDisposable EnableGrad() => new Restore(enabled: true);

    private sealed class Restore : IDisposable
    {
        private readonly bool _previousDisabled;
        private bool _done;

        public Restore(bool enabled)
        {
            _previousDisabled = _disabled;
            _disabled = !enabled;
        }

        public void Dispose()
        {
            if (_done)
                return;
            _done = true;
            _disabled = _previousDisabled;
        }
    }
}
