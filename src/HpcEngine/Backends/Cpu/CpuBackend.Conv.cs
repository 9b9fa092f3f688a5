namespace HpcEngine.Backends.Cpu;

internal sealed unsafe partial class CpuBackend
{
    public bool TryConv2d(Tensor x, Tensor w, Tensor? bias, Tensor y, int groups, Conv2dGeometry geo)
    {
        int n = x.Shape[0];
        if (!ImageConv.Applies(n))
            return false;
        int c = x.Shape[1],
            o = w.Shape[0];
        switch (x.DType)
        {
            case DType.Float32:
                ImageConv.Forward(
                    x.Ptr<float>(),
                    w.Ptr<float>(),
                    bias != null ? bias.Ptr<float>() : null,
                    y.Ptr<float>(),
                    n,
                    c,
                    o,
                    groups,
                    geo
                );
                return true;
            case DType.Float64:
                ImageConv.Forward(
                    x.Ptr<double>(),
                    w.Ptr<double>(),
                    bias != null ? bias.Ptr<double>() : null,
                    y.Ptr<double>(),
                    n,
                    c,
                    o,
                    groups,
                    geo
                );
                return true;
            default:
                return false;
        }
    }

    public bool TryConv2dBackward(Tensor x, Tensor w, Tensor gy, Tensor? dx, Tensor? dw, int groups, Conv2dGeometry geo)
    {
        int n = x.Shape[0];
        if (!ImageConv.Applies(n))
            return false;
        int c = x.Shape[1],
            o = w.Shape[0];
        switch (x.DType)
        {
            case DType.Float32:
                ImageConv.Backward(
                    x.Ptr<float>(),
                    w.Ptr<float>(),
                    gy.Ptr<float>(),
                    dx != null ? dx.Ptr<float>() : null,
                    dw != null ? dw.Ptr<float>() : null,
                    n,
                    c,
                    o,
                    groups,
                    geo
                );
                return true;
            case DType.Float64:
                ImageConv.Backward(
                    x.Ptr<double>(),
                    w.Ptr<double>(),
                    gy.Ptr<double>(),
                    dx != null ? dx.Ptr<double>() : null,
                    dw != null ? dw.Ptr<double>() : null,
                    n,
                    c,
                    o,
                    groups,
                    geo
                );
                return true;
            default:
                return false;
        }
    }
}
