// 2-D max and average pooling over NCHW planes; max pooling records the argmax for its backward.
#include "hpc/common.cuh"

using namespace hpc;

struct PoolShape {
  int planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

extern "C" __global__ void maxpool2d_f32(const float* x, float* y, int* argmax, PoolShape s) {
  i64 n = (i64)s.planes * s.oh * s.ow;
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    int ox = (int)(i % s.ow), oy = (int)((i / s.ow) % s.oh);
    i64 plane = i / ((i64)s.ow * s.oh);
    float best = -__int_as_float(0x7f800000);
    int at = -1;
    for (int ky = 0; ky < s.kh; ky++)
      for (int kx = 0; kx < s.kw; kx++) {
        int iy = oy * s.sh - s.ph + ky, ix = ox * s.sw - s.pw + kx;
        if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
        float v = x[(plane * s.h + iy) * s.w + ix];
        if (v > best || at < 0) { best = v; at = iy * s.w + ix; }
      }
    y[i] = best;
    argmax[i] = at;
  }
}

// dx must be zeroed first; windows that overlap (stride < kernel) can hit the same input, hence atomics.
extern "C" __global__ void maxpool2d_backward_f32(const float* dy, const int* argmax, float* dx, PoolShape s) {
  i64 n = (i64)s.planes * s.oh * s.ow;
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 plane = i / ((i64)s.ow * s.oh);
    if (argmax[i] >= 0) atomicAdd(dx + plane * s.h * s.w + argmax[i], dy[i]);
  }
}

// Average over the window, padding counted (PyTorch's count_include_pad = true default).
extern "C" __global__ void avgpool2d_f32(const float* x, float* y, PoolShape s) {
  i64 n = (i64)s.planes * s.oh * s.ow;
  float inv = 1.0f / (float)(s.kh * s.kw);
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    int ox = (int)(i % s.ow), oy = (int)((i / s.ow) % s.oh);
    i64 plane = i / ((i64)s.ow * s.oh);
    float acc = 0.0f;
    for (int ky = 0; ky < s.kh; ky++)
      for (int kx = 0; kx < s.kw; kx++) {
        int iy = oy * s.sh - s.ph + ky, ix = ox * s.sw - s.pw + kx;
        if (iy >= 0 && iy < s.h && ix >= 0 && ix < s.w) acc += x[(plane * s.h + iy) * s.w + ix];
      }
    y[i] = acc * inv;
  }
}
