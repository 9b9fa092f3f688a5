using System.Numerics;
using System.Numerics.Tensors;

namespace HpcEngine.Backends.Cpu;

/// <summary>im2col / col2im for the common "same" convolution (stride 1, output as wide as the input: 3×3 padding 1,
/// 5×5 padding 2, …). There each unfolded row — one (channel, ki, kj) over every output pixel — is the input plane
/// shifted by a constant offset, so it is one long copy (or add) of the plane instead of one short copy per output
/// row, with the few columns that wrap into the neighbouring row fixed up after. For the Fashion-MNIST cnn's 14×14
/// conv2 that is 288 copies of ~196 values per image instead of 4,032 of 14: the short copies' call overhead was as
/// large as the GEMM's work.</summary>
internal static unsafe partial class ConvKernels
{
    /// <summary>True when every unfolded row is a shifted copy of the input plane.</summary>
    private static bool IsShift(Conv2dGeometry g, int oh, int ow) => g.SH == 1 && g.SW == 1 && ow == g.W && oh > 0;

    /// <summary>One unfolded row's place in the plane: output pixel p reads plane element p + Shift, for the output
    /// rows [Oy0, Oy1) whose input row exists; columns wrap where ox + Dx leaves [0, W).</summary>
    private readonly struct ShiftedRow
    {
        public readonly int Oy0,
            Oy1,
            Dx;
        public readonly long Shift,
            First,
            End;

        public ShiftedRow(Conv2dGeometry g, int oh, int ow, int ki, int kj)
        {
            int dy = ki * g.DH - g.PH;
            Dx = kj * g.DW - g.PW;
            Oy0 = Math.Clamp(-dy, 0, oh);
            Oy1 = Math.Clamp(g.H - dy, Oy0, oh);
            Shift = (long)dy * g.W + Dx;
            // The output range [Oy0·OW, Oy1·OW) clipped so that p + Shift stays inside the plane (the clipped ends
            // are wrapped columns, zero anyway).
            long plane = (long)g.H * g.W,
                lo = (long)Oy0 * ow,
                hi = (long)Oy1 * ow;
            First = Math.Clamp(-Shift, lo, hi);
            End = Math.Clamp(plane - Shift, First, hi);
        }

        /// <summary>True when output column ox of this row reads outside its input row.</summary>
        public bool Wraps(int ox, int w) => (uint)(ox + Dx) >= (uint)w;
    }

    /// <summary>One unfolded row of a "same" convolution: the plane shifted, wrapped columns zeroed.</summary>
    private static void ShiftedRowCopy<T>(T* plane, Conv2dGeometry g, int oh, int ow, int ki, int kj, T* row)
        where T : unmanaged, INumber<T>
    {
        int l = oh * ow;
        var r = new ShiftedRow(g, oh, ow, ki, kj);
        new Span<T>(row, (int)r.First).Clear();
        new ReadOnlySpan<T>(plane + r.First + r.Shift, (int)(r.End - r.First)).CopyTo(
            new Span<T>(row + r.First, (int)(r.End - r.First))
        );
        new Span<T>(row + r.End, (int)(l - r.End)).Clear();
        if (r.Dx == 0)
            return;
        // Columns that wrapped into the neighbouring input row read padding: zero them.
        int x0 = r.Dx < 0 ? 0 : Math.Max(ow - r.Dx, 0),
            x1 = r.Dx < 0 ? Math.Min(-r.Dx, ow) : ow;
        for (int oy = r.Oy0; oy < r.Oy1; oy++)
        for (int x = x0; x < x1; x++)
            row[oy * ow + x] = T.Zero;
    }

    private static void Col2ImShifted<T>(T* cols, Conv2dGeometry g, T* img, int ld)
        where T : unmanaged, INumber<T>
    {
        int ow = g.OW,
            oh = g.OH;
        long plane = (long)g.H * g.W;
        // The wrapped columns' targets are saved before the long add and put back after it: each target receives
        // exactly one value of the row, so restoring it undoes that value exactly.
        int wrapped = Math.Min(Math.Max(g.PW, (g.KW - 1) * g.DW - g.PW), ow) * oh;
        Span<T> saved = wrapped <= 256 ? stackalloc T[wrapped] : new T[wrapped];
        for (int c = 0; c < g.C; c++)
        for (int ki = 0; ki < g.KH; ki++)
        for (int kj = 0; kj < g.KW; kj++)
        {
            T* row = cols + (long)((c * g.KH + ki) * g.KW + kj) * ld;
            T* dst = img + c * plane;
            var r = new ShiftedRow(g, oh, ow, ki, kj);
            int x0 = r.Dx < 0 ? 0 : Math.Max(ow - r.Dx, 0),
                x1 = r.Dx < 0 ? Math.Min(-r.Dx, ow) : ow;
            int kept = 0;
            for (int oy = r.Oy0; oy < r.Oy1 && r.Dx != 0; oy++)
            for (int x = x0; x < x1; x++)
            {
                long p = (long)oy * ow + x;
                if (p >= r.First && p < r.End)
                    saved[kept++] = dst[p + r.Shift];
            }
            var into = new Span<T>(dst + r.First + r.Shift, (int)(r.End - r.First));
            TensorPrimitives.Add(into, new ReadOnlySpan<T>(row + r.First, into.Length), into);
            kept = 0;
            for (int oy = r.Oy0; oy < r.Oy1 && r.Dx != 0; oy++)
            for (int x = x0; x < x1; x++)
            {
                long p = (long)oy * ow + x;
                if (p >= r.First && p < r.End)
                    dst[p + r.Shift] = saved[kept++];
            }
        }
    }
}
