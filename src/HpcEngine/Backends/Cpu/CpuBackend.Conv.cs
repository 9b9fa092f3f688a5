using System.Numerics;

namespace HpcEngine.Backends.Cpu;

internal sealed unsafe partial class CpuBackend
{
    public bool TryConv2d(Tensor x, Tensor w, Tensor? bias, Tensor y, int groups, Conv2dGeometry geo)
    {
        if (!ImageConv.Applies(x.Shape[0]))
            return false;
        switch (x.DType)
        {
            case DType.Float32:
                ConvForward<float>(x, w, bias, y, groups, geo);
                return true;
            case DType.Float64:
                ConvForward<double>(x, w, bias, y, groups, geo);
                return true;
            default:
                return false;
        }
    }

    public bool TryConv2dBackward(Tensor x, Tensor w, Tensor gy, Tensor? dx, Tensor? dw, int groups, Conv2dGeometry geo)
    {
        if (!ImageConv.Applies(x.Shape[0]))
            return false;
        switch (x.DType)
        {
            case DType.Float32:
                ConvBackward<float>(x, w, gy, dx, dw, groups, geo);
                return true;
            case DType.Float64:
                ConvBackward<double>(x, w, gy, dx, dw, groups, geo);
                return true;
            default:
                return false;
        }
    }

    private static void ConvForward<T>(Tensor x, Tensor w, Tensor? bias, Tensor y, int groups, Conv2dGeometry geo)
        where T : unmanaged, INumber<T> =>
        ImageConv.Forward(
            x.Ptr<T>(),
            w.Ptr<T>(),
            OrNull<T>(bias),
            y.Ptr<T>(),
            x.Shape[0],
            x.Shape[1],
            w.Shape[0],
            groups,
            geo
        );

    private static void ConvBackward<T>(
        Tensor x,
        Tensor w,
        Tensor gy,
        Tensor? dx,
        Tensor? dw,
        int groups,
        Conv2dGeometry geo
    )
        where T : unmanaged, INumber<T> =>
        ImageConv.Backward(
            x.Ptr<T>(),
            w.Ptr<T>(),
            gy.Ptr<T>(),
            OrNull<T>(dx),
            OrNull<T>(dw),
            x.Shape[0],
            x.Shape[1],
            w.Shape[0],
            groups,
            geo
        );

    private static T* OrNull<T>(Tensor? t)
        where T : unmanaged => t != null ? t.Ptr<T>() : null;
}
