namespace HpcEngine.Compression;

/// <summary>Where a codec sees a tensor: the tensor itself when it is in host memory or the codec encodes on devices
/// (<see cref="GradientCodec.TakesDeviceTensors"/>), else a host copy kept here between steps, whose average is
/// copied back once the exchange completed. The strategies stage through this, so the host/device decision is made
/// in one place.</summary>
public sealed class HostStaging(GradientCodec codec) : IDisposable
{
    private Tensor? _host;
    private bool _staged;

    /// <summary>What to hand the codec for <paramref name="flat"/> (a float32 vector): itself, or its host copy (copied
    /// now).</summary>
    public Tensor ForCodec(Tensor flat)
    {
        ArgumentNullException.ThrowIfNull(flat);
        _staged = flat.Device.Type != DeviceType.Cpu && !codec.TakesDeviceTensors;
        if (!_staged)
            return flat;
        if (_host == null || _host.NumEl != flat.NumEl)
        {
            _host?.Dispose();
            _host = Tensor.Empty(flat.ShapeArray, DType.Float32).DetachFromScope();
        }
        Ops.CopyAcross(flat, _host);
        return _host;
    }

    /// <summary>After the exchange completed: the average into <paramref name="flat"/> when it was staged.</summary>
    public void CopyBack(Tensor flat)
    {
        ArgumentNullException.ThrowIfNull(flat);
        if (_staged)
            Ops.CopyAcross(_host!, flat);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _host?.Dispose();
        _host = null;
    }
}
