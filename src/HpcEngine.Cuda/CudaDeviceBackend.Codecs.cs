using System.Runtime.InteropServices;
using HpcEngine.Backends;
using HpcEngine.Cuda.Interop;

namespace HpcEngine.Cuda;

/// <summary>The gradient codecs' device halves: encode a bucket into a message, decode-and-add one.</summary>
internal sealed unsafe partial class CudaDeviceBackend
{
    public void EncodeMessage(MessageFormat format, Tensor v, Tensor scale, Tensor msg, ulong seed, ulong start)
    {
        Float32("encode", v, scale);
        long n = v.NumEl;
        if (format == MessageFormat.Sign)
            context.Launch(
                Kernel("compress.cu", "sign_encode_f32"),
                Grid(Math.Max(1, (n + 7) / 8)),
                Block,
                0,
                Ptr(v),
                Ptr(scale),
                Ptr(msg),
                n
            );
        else
            context.Launch(
                Kernel("compress.cu", "int8_encode_f32"),
                Grid(Math.Max(1, n)),
                Block,
                0,
                Ptr(v),
                Ptr(scale),
                Ptr(msg),
                n,
                seed,
                start
            );
    }

    public void DecodeAddMessage(MessageFormat format, Tensor msg, Tensor sum)
    {
        Float32("decode", sum);
        if (sum.NumEl == 0)
            return;
        context.Launch(
            Kernel("compress.cu", format == MessageFormat.Sign ? "sign_decode_add_f32" : "int8_decode_add_f32"),
            Grid(sum.NumEl),
            Block,
            0,
            Ptr(msg),
            Ptr(sum),
            (long)sum.NumEl
        );
    }
}
