using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpcEngine.Backends.Cpu;

/// <summary>2×2 stride-2 max pooling of float32 rows, 8 (then 4) outputs per step, branch-free: the scalar loop's
/// "is this one larger" branches depend on the data and mispredicted on about half the outputs of a trained
/// network's activations — the cnn step's max pool took as long as a convolution pass. Same rule as the scalar loop:
/// a candidate replaces the best when it is larger or NaN (so NaN propagates, the last NaN's index wins, as
/// PyTorch's CPU kernel).</summary>
internal static unsafe partial class PoolKernels
{
    /// <summary>Outputs [0, returned) of one output row: input rows start at element r0 and r0 + w of the plane
    /// xp; the rest is left to the caller's scalar loop.</summary>
    private static int MaxRow2x2(float* xp, int r0, int w, float* y, long* argmax, int ow)
    {
        if (!Avx2.IsSupported)
            return 0;
        int ox = 0;
        var lanes8 = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
        for (; ox + 8 <= ow; ox += 8)
        {
            float* a = xp + r0 + 2 * ox,
                b = a + w;
            var (e0, o0) = Deinterleave(Avx.LoadVector256(a), Avx.LoadVector256(a + 8));
            var (e1, o1) = Deinterleave(Avx.LoadVector256(b), Avx.LoadVector256(b + 8));
            var i0 = Vector256.Create(r0 + 2 * ox) + lanes8;
            var best = e0;
            var bi = i0;
            Take(o0, i0 + Vector256<int>.One, ref best, ref bi);
            Take(e1, i0 + Vector256.Create(w), ref best, ref bi);
            Take(o1, i0 + Vector256.Create(w + 1), ref best, ref bi);
            Avx.Store(y + ox, best);
            var (lo, hi) = Vector256.Widen(bi);
            lo.Store(argmax + ox);
            hi.Store(argmax + ox + 4);
        }
        var lanes4 = Vector128.Create(0, 2, 4, 6);
        for (; ox + 4 <= ow; ox += 4)
        {
            float* a = xp + r0 + 2 * ox,
                b = a + w;
            var va = Sse.LoadVector128(a);
            var vb = Sse.LoadVector128(a + 4);
            var vc = Sse.LoadVector128(b);
            var vd = Sse.LoadVector128(b + 4);
            var i0 = Vector128.Create(r0 + 2 * ox) + lanes4;
            var best = Sse.Shuffle(va, vb, 0x88);
            var bi = i0;
            Take(Sse.Shuffle(va, vb, 0xDD), i0 + Vector128<int>.One, ref best, ref bi);
            Take(Sse.Shuffle(vc, vd, 0x88), i0 + Vector128.Create(w), ref best, ref bi);
            Take(Sse.Shuffle(vc, vd, 0xDD), i0 + Vector128.Create(w + 1), ref best, ref bi);
            Sse.Store(y + ox, best);
            var (lo, hi) = Vector128.Widen(bi);
            lo.Store(argmax + ox);
            hi.Store(argmax + ox + 2);
        }
        return ox;
    }

    /// <summary>Even and odd elements of 16 consecutive floats, each in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Even, Vector256<float> Odd) Deinterleave(Vector256<float> a, Vector256<float> b)
    {
        // In-lane shuffles give [0 2 | 8 10 | 4 6 | 12 14] (64-bit pairs); the permute puts the pairs in order.
        var even = Avx.Shuffle(a, b, 0x88).AsDouble();
        var odd = Avx.Shuffle(a, b, 0xDD).AsDouble();
        return (Avx2.Permute4x64(even, 0xD8).AsSingle(), Avx2.Permute4x64(odd, 0xD8).AsSingle());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Take(Vector256<float> v, Vector256<int> i, ref Vector256<float> best, ref Vector256<int> bi)
    {
        var take = Avx.Or(Avx.CompareGreaterThan(v, best), Avx.CompareUnordered(v, v));
        best = Avx.BlendVariable(best, v, take);
        bi = Avx.BlendVariable(bi.AsSingle(), i.AsSingle(), take).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Take(Vector128<float> v, Vector128<int> i, ref Vector128<float> best, ref Vector128<int> bi)
    {
        var take = Sse.Or(Sse.CompareGreaterThan(v, best), Sse.CompareUnordered(v, v));
        best = Sse41.BlendVariable(best, v, take);
        bi = Sse41.BlendVariable(bi.AsSingle(), i.AsSingle(), take).AsInt32();
    }
}
