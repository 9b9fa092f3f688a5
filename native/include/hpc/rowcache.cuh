// A row of a [rows, cols] fp32 matrix held in registers by one block: thread t keeps the float4s at columns
// 4·(k·blockDim.x + t), k < kVec — up to 16 values per thread (4096 columns at 256 threads). Row kernels that would
// read a row several times (softmax: max, sum, write; layer norm: mean, variance, write) read it once this way, with
// 16-byte loads. Usable when the row is 16-byte aligned and cols % 4 == 0 (fits(); uniform across the grid).
#pragma once
#include "hpc/common.cuh"

namespace hpc {

struct RowCache {
  static const int kVec = 4;
  float4 x[kVec];

  // Whether every row of x (and of the output y) can be cached: aligned bases, whole float4s, few enough columns.
  __device__ static bool fits(const float* x, const float* y, i64 cols) {
    return (cols & 3) == 0 && cols <= (i64)kVec * 4 * blockDim.x && ((((u64)x) | ((u64)y)) & 15) == 0;
  }

  __device__ __forceinline__ i64 column(int k) const { return ((i64)k * blockDim.x + threadIdx.x) * 4; }

  __device__ __forceinline__ bool in_row(int k, i64 cols) const { return column(k) < cols; }

  __device__ __forceinline__ void load(const float* row, i64 cols) {
#pragma unroll
    for (int k = 0; k < kVec; k++) x[k] = in_row(k, cols) ? load4(row + column(k)) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }

  // This thread's maximum over its cached values (-inf when it holds none).
  __device__ __forceinline__ float max(i64 cols) const {
    float m = -__int_as_float(0x7f800000);
#pragma unroll
    for (int k = 0; k < kVec; k++)
      if (in_row(k, cols)) m = fmaxf(m, fmaxf(fmaxf(x[k].x, x[k].y), fmaxf(x[k].z, x[k].w)));
    return m;
  }

  // This thread's sum over its cached values.
  __device__ __forceinline__ float sum(i64 cols) const {
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < kVec; k++)
      if (in_row(k, cols)) s += (x[k].x + x[k].y) + (x[k].z + x[k].w);
    return s;
  }
};

}  // namespace hpc
