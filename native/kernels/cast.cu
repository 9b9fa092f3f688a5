// dtype casts between fp32 and the 16-bit formats (bit patterns as unsigned short: no cuda_fp16.h / cuda_bf16.h).
#include "hpc/common.cuh"

using namespace hpc;

extern "C" __global__ void f32_to_bf16(const float* x, unsigned short* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = float_to_bf16_bits(x[i]);
}

extern "C" __global__ void bf16_to_f32(const unsigned short* x, float* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = bf16_bits_to_float(x[i]);
}

extern "C" __global__ void f32_to_f16(const float* x, unsigned short* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = float_to_half_bits(x[i]);
}

extern "C" __global__ void f16_to_f32(const unsigned short* x, float* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = half_bits_to_float(x[i]);
}
