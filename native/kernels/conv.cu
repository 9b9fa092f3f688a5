// Convolution as im2col + GEMM (cuBLAS) and its backward through col2im. NCHW, float32.
#include "hpc/common.cuh"

using namespace hpc;

struct ConvShape {
  int c, h, w;       // input channels and size
  int kh, kw;        // kernel size
  int sh, sw;        // stride
  int ph, pw;        // padding
  int dh, dw;        // dilation
  int oh, ow;        // output size
};

// cols [C/g·KH·KW, N·OH·OW] in the CPU backend's layout: column b·L + pixel holds image b's receptive field for that
// output pixel, so one GEMM per group covers the whole batch. x and dx are [N, ctotal, H, W]; the group's channels
// start at c0.
extern "C" __global__ void im2col_batch_f32(const float* x, float* cols, ConvShape s, i64 n, int ctotal, int c0) {
  i64 l = (i64)s.oh * s.ow, nl = n * l;
  i64 total = (i64)s.c * s.kh * s.kw * nl;
  for (i64 i = global_index(); i < total; i += grid_stride()) {
    i64 col = i % nl, row = i / nl, b = col / l, pix = col % l;
    int ox = (int)(pix % s.ow), oy = (int)(pix / s.ow);
    int kx = (int)(row % s.kw), ky = (int)((row / s.kw) % s.kh), ch = (int)(row / ((i64)s.kw * s.kh));
    int iy = oy * s.sh - s.ph + ky * s.dh, ix = ox * s.sw - s.pw + kx * s.dw;
    cols[i] = (iy >= 0 && iy < s.h && ix >= 0 && ix < s.w) ? x[((b * ctotal + c0 + ch) * s.h + iy) * s.w + ix] : 0.0f;
  }
}

// dx[b, c0 + ch, y, x] = the sum of the cols entries that read it (overwrites the group's channels; no atomics).
extern "C" __global__ void col2im_batch_f32(const float* cols, float* dx, ConvShape s, i64 n, int ctotal, int c0) {
  i64 l = (i64)s.oh * s.ow, nl = n * l;
  i64 total = n * s.c * s.h * s.w;
  for (i64 i = global_index(); i < total; i += grid_stride()) {
    int ix = (int)(i % s.w), iy = (int)((i / s.w) % s.h);
    i64 rest = i / ((i64)s.w * s.h);
    int ch = (int)(rest % s.c);
    i64 b = rest / s.c;
    float acc = 0.0f;
    for (int ky = 0; ky < s.kh; ky++) {
      int ty = iy + s.ph - ky * s.dh;
      if (ty < 0 || ty % s.sh != 0) continue;
      int oy = ty / s.sh;
      if (oy >= s.oh) continue;
      for (int kx = 0; kx < s.kw; kx++) {
        int tx = ix + s.pw - kx * s.dw;
        if (tx < 0 || tx % s.sw != 0) continue;
        int ox = tx / s.sw;
        if (ox >= s.ow) continue;
        i64 row = ((i64)ch * s.kh + ky) * s.kw + kx;
        acc += cols[row * nl + b * l + (i64)oy * s.ow + ox];
      }
    }
    dx[((b * ctotal + c0 + ch) * s.h + iy) * s.w + ix] = acc;
  }
}
