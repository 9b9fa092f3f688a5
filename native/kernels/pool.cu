// 2-D max and average pooling over NCHW planes; max pooling records the argmax for its backward.
#include "hpc/common.cuh"

using namespace hpc;

struct PoolShape {
  int planes, h, w, kh, kw, sh, sw, ph, pw, oh, ow, dh, dw;  // dh, dw: max pooling's dilation (average: 1)
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
        int iy = oy * s.sh - s.ph + ky * s.dh, ix = ox * s.sw - s.pw + kx * s.dw;
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

// The window of output (oy, ox) clipped to the input, and its divisor: the window clipped to the padded input
// when padding counts (PyTorch's count_include_pad = true default), else the in-bounds part. As the CPU backend.
struct AvgWindow {
  int ys, ye, xs, xe;
  float div;
};

__device__ __forceinline__ AvgWindow avg_window(const PoolShape& s, int oy, int ox, int count_pad) {
  int y0 = oy * s.sh - s.ph, x0 = ox * s.sw - s.pw;
  int y1 = min(y0 + s.kh, s.h + s.ph), x1 = min(x0 + s.kw, s.w + s.pw);
  AvgWindow w;
  w.ys = max(y0, 0); w.xs = max(x0, 0); w.ye = min(y1, s.h); w.xe = min(x1, s.w);
  int count = count_pad ? (y1 - y0) * (x1 - x0) : (w.ye - w.ys) * (w.xe - w.xs);
  w.div = (float)max(count, 1);
  return w;
}

extern "C" __global__ void avgpool2d_f32(const float* x, float* y, PoolShape s, int count_pad) {
  i64 n = (i64)s.planes * s.oh * s.ow;
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    int ox = (int)(i % s.ow), oy = (int)((i / s.ow) % s.oh);
    i64 plane = i / ((i64)s.ow * s.oh);
    AvgWindow w = avg_window(s, oy, ox, count_pad);
    const float* xp = x + plane * s.h * s.w;
    float acc = 0.0f;
    for (int iy = w.ys; iy < w.ye; iy++)
      for (int ix = w.xs; ix < w.xe; ix++) acc += xp[iy * s.w + ix];
    y[i] = acc / w.div;
  }
}

// dx (zeroed first) += dy / divisor over each window; overlapping windows hit the same input, hence atomics.
extern "C" __global__ void avgpool2d_backward_f32(const float* dy, float* dx, PoolShape s, int count_pad) {
  i64 n = (i64)s.planes * s.oh * s.ow;
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    int ox = (int)(i % s.ow), oy = (int)((i / s.ow) % s.oh);
    i64 plane = i / ((i64)s.ow * s.oh);
    AvgWindow w = avg_window(s, oy, ox, count_pad);
    float g = dy[i] / w.div;
    float* dp = dx + plane * s.h * s.w;
    for (int iy = w.ys; iy < w.ye; iy++)
      for (int ix = w.xs; ix < w.xe; ix++) atomicAdd(dp + iy * s.w + ix, g);
  }
}
