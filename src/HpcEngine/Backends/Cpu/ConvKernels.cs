using System.Numerics;

namespace HpcEngine.Backends.Cpu;

/// <summary>im2col / col2im: unfold a [C, H, W] image into a [C·KH·KW, OH·OW] matrix so convolution is one GEMM
/// (W[O, C·KH·KW] · cols), and fold the gradient of that matrix back (summing overlapping windows).</summary>
internal static unsafe partial class ConvKernels
{
    /// <summary>Writes image <paramref name="img"/>'s unfolded windows into cols, whose rows are <paramref name="ld"/>
    /// apart.</summary>
    public static void Im2Col<T>(T* img, Conv2dGeometry g, T* cols, int ld)
        where T : unmanaged, INumber<T>
    {
        int rows = g.C * g.KH * g.KW;
        for (int k = 0; k < rows; k++)
            Im2ColRow(img, g, k, cols + (long)k * ld);
    }

    /// <summary>Writes row <paramref name="k"/> (channel, ki, kj) of image <paramref name="img"/>'s unfolded windows —
    /// OH·OW values — into <paramref name="dst"/>.</summary>
    public static void Im2ColRow<T>(T* img, Conv2dGeometry g, int k, T* dst)
        where T : unmanaged, INumber<T>
    {
        int c = k / (g.KH * g.KW),
            ki = k / g.KW % g.KH,
            kj = k % g.KW;
        T* plane = img + (long)c * g.H * g.W;
        int oh = g.OH,
            ow = g.OW;
        if (IsShift(g, oh, ow))
        {
            ShiftedRowCopy(plane, g, oh, ow, ki, kj, dst);
            return;
        }
        for (int y = 0; y < oh; y++, dst += ow)
        {
            int iy = y * g.SH - g.PH + ki * g.DH;
            if ((uint)iy >= (uint)g.H)
            {
                new Span<T>(dst, ow).Clear();
                continue;
            }
            T* src = plane + (long)iy * g.W;
            int ix0 = -g.PW + kj * g.DW;
            if (g.SW == 1)
            {
                // Unit stride: zeros where the window hangs over the padding, one copy for the rest.
                int x0 = Math.Clamp(-ix0, 0, ow),
                    x1 = Math.Clamp(g.W - ix0, x0, ow);
                new Span<T>(dst, x0).Clear();
                new ReadOnlySpan<T>(src + ix0 + x0, x1 - x0).CopyTo(new Span<T>(dst + x0, x1 - x0));
                new Span<T>(dst + x1, ow - x1).Clear();
                continue;
            }
            for (int x = 0; x < ow; x++)
            {
                int ix = x * g.SW + ix0;
                dst[x] = (uint)ix < (uint)g.W ? src[ix] : T.Zero;
            }
        }
    }

    /// <summary>Adds the columns (rows <paramref name="ld"/> apart) back into image <paramref name="img"/>.</summary>
    public static void Col2Im<T>(T* cols, Conv2dGeometry g, T* img, int ld)
        where T : unmanaged, INumber<T>
    {
        if (IsShift(g, g.OH, g.OW))
        {
            Col2ImShifted(cols, g, img, ld);
            return;
        }
        int oh = g.OH,
            ow = g.OW,
            l = ld;
        for (int c = 0; c < g.C; c++)
        for (int ki = 0; ki < g.KH; ki++)
        for (int kj = 0; kj < g.KW; kj++)
        {
            T* row = cols + (long)((c * g.KH + ki) * g.KW + kj) * l;
            for (int y = 0; y < oh; y++)
            {
                int iy = y * g.SH - g.PH + ki * g.DH;
                if ((uint)iy >= (uint)g.H)
                    continue;
                T* dst = img + ((long)c * g.H + iy) * g.W;
                T* src = row + y * ow;
                for (int x = 0; x < ow; x++)
                {
                    int ix = x * g.SW - g.PW + kj * g.DW;
                    if ((uint)ix < (uint)g.W)
                        dst[ix] += src[x];
                }
            }
        }
    }
}

/// <summary>2-D max and average pooling over [N·C] planes (planes split across threads).</summary>
internal static unsafe partial class PoolKernels
{
    public static void MaxForward<T>(T* x, T* y, long* argmax, int planes, Conv2dGeometry g)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int oh = g.OH,
            ow = g.OW;
        if (g is { KH: 2, KW: 2, SH: 2, SW: 2, PH: 0, PW: 0, DH: 1, DW: 1 } && 2 * oh <= g.H && 2 * ow <= g.W)
        {
            // The common 2×2/2 window: four loads per output, no bounds checks (the window never leaves the image).
            CpuThreads.For(planes, (long)planes * oh * ow * 4, (s, e) =>
            {
                for (int p = s; p < e; p++)
                {
                    T* xp = x + (long)p * g.H * g.W;
                    for (int oy = 0; oy < oh; oy++)
                    {
                        long o = ((long)p * oh + oy) * ow;
                        int r0 = 2 * oy * g.W,
                            r1 = r0 + g.W;
                        int ox =
                            typeof(T) == typeof(float)
                                ? MaxRow2x2((float*)xp, r0, g.W, (float*)y + o, argmax + o, ow)
                                : 0;
                        for (; ox < ow; ox++)
                        {
                            int i0 = r0 + 2 * ox,
                                i1 = i0 + 1,
                                i2 = r1 + 2 * ox,
                                i3 = i2 + 1;
                            int bi = i0;
                            T best = xp[i0];
                            if (xp[i1] > best || T.IsNaN(xp[i1]))
                            {
                                best = xp[i1];
                                bi = i1;
                            }
                            if (xp[i2] > best || T.IsNaN(xp[i2]))
                            {
                                best = xp[i2];
                                bi = i2;
                            }
                            if (xp[i3] > best || T.IsNaN(xp[i3]))
                            {
                                best = xp[i3];
                                bi = i3;
                            }
                            y[o + ox] = best;
                            argmax[o + ox] = bi;
                        }
                    }
                }
            });
            return;
        }
        CpuThreads.For(planes, (long)planes * oh * ow * g.KH * g.KW, (s, e) =>
        {
            for (int p = s; p < e; p++)
            {
                T* xp = x + (long)p * g.H * g.W;
                for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    T best = T.NegativeInfinity;
                    long bi = -1;
                    for (int ki = 0; ki < g.KH; ki++)
                    {
                        int iy = oy * g.SH - g.PH + ki * g.DH;
                        if ((uint)iy >= (uint)g.H)
                            continue;
                        for (int kj = 0; kj < g.KW; kj++)
                        {
                            int ix = ox * g.SW - g.PW + kj * g.DW;
                            if ((uint)ix >= (uint)g.W)
                                continue;
                            T v = xp[iy * g.W + ix];
                            if (v > best || T.IsNaN(v) || bi < 0)
                            {
                                best = v;
                                bi = iy * g.W + ix;
                                if (T.IsNaN(v))
                                    goto done;
                            }
                        }
                    }
                    done:
                    long o = ((long)p * oh + oy) * ow + ox;
                    y[o] = best;
                    argmax[o] = bi;
                }
            }
        });
    }

    public static void MaxBackward<T>(T* gy, long* argmax, T* gx, int planes, Conv2dGeometry g)
        where T : unmanaged, INumber<T>
    {
        int outPlane = g.OH * g.OW,
            inPlane = g.H * g.W;
        CpuThreads.For(planes, (long)planes * outPlane, (s, e) =>
        {
            for (int p = s; p < e; p++)
            for (int o = 0; o < outPlane; o++)
            {
                long i = argmax[(long)p * outPlane + o];
                if (i >= 0)
                    gx[(long)p * inPlane + i] += gy[(long)p * outPlane + o];
            }
        });
    }

    /// <summary>Average pooling (forward when <paramref name="backward"/> is false: y from x; backward: gx from gy).
    /// With countIncludePad the divisor is the window clipped to the padded input, as PyTorch does.</summary>
    public static void Avg<T>(T* x, T* y, int planes, Conv2dGeometry g, bool countIncludePad, bool backward)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int oh = g.OH,
            ow = g.OW;
        CpuThreads.For(planes, (long)planes * oh * ow * g.KH * g.KW, (s, e) =>
        {
            for (int p = s; p < e; p++)
            {
                T* xp = x + (long)p * g.H * g.W;
                for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                {
                    int y0 = oy * g.SH - g.PH,
                        x0 = ox * g.SW - g.PW;
                    int y1 = Math.Min(y0 + g.KH, g.H + g.PH),
                        x1 = Math.Min(x0 + g.KW, g.W + g.PW);
                    int padCount = (y1 - y0) * (x1 - x0);
                    int ys = Math.Max(y0, 0),
                        xs = Math.Max(x0, 0),
                        ye = Math.Min(y1, g.H),
                        xe = Math.Min(x1, g.W);
                    int count = countIncludePad ? padCount : (ye - ys) * (xe - xs);
                    T div = T.CreateTruncating(Math.Max(count, 1));
                    long o = ((long)p * oh + oy) * ow + ox;
                    if (!backward)
                    {
                        T acc = T.Zero;
                        for (int iy = ys; iy < ye; iy++)
                        for (int ix = xs; ix < xe; ix++)
                            acc += xp[iy * g.W + ix];
                        y[o] = acc / div;
                    }
                    else
                    {
                        T gv = y[o] / div;
                        for (int iy = ys; iy < ye; iy++)
                        for (int ix = xs; ix < xe; ix++)
                            xp[iy * g.W + ix] += gv;
                    }
                }
            }
        });
    }
}
