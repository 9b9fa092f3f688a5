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

extern "C" __global__ void f32_to_f64(const float* x, double* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = (double)x[i];
}

extern "C" __global__ void f64_to_f32(const double* x, float* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = (float)x[i];
}

// Integer and bool conversions (bool is one byte, 0 or 1). To an integer: truncation toward zero with NaN → 0 and
// saturation, as the CPU backend's CastKernels; to bool: non-zero → 1.
__device__ __forceinline__ i64 f32_to_int64_sat(float v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18f) return 0x7fffffffffffffffLL;
  if (v <= -9.2233720368547758e18f) return (i64)0x8000000000000000ULL;
  return (i64)v;
}

extern "C" __global__ void f32_to_i64(const float* x, i64* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = f32_to_int64_sat(x[i]);
}

extern "C" __global__ void f32_to_i32(const float* x, int* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    float v = x[i];
    y[i] = v != v ? 0 : v >= 2147483647.0f ? 2147483647 : v <= -2147483648.0f ? (int)0x80000000u : (int)v;
  }
}

extern "C" __global__ void f32_to_bool(const float* x, unsigned char* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = x[i] != 0.0f ? 1 : 0;
}

extern "C" __global__ void i64_to_f32(const i64* x, float* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = (float)x[i];
}

extern "C" __global__ void i32_to_f32(const int* x, float* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = (float)x[i];
}

extern "C" __global__ void u8_to_f32(const unsigned char* x, float* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = (float)x[i];
}

extern "C" __global__ void i32_to_i64(const int* x, i64* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = (i64)x[i];
}

extern "C" __global__ void i64_to_i32(const i64* x, int* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 v = x[i];
    y[i] = v > 2147483647LL ? 2147483647 : v < -2147483648LL ? (int)0x80000000u : (int)v;
  }
}

extern "C" __global__ void u8_to_i64(const unsigned char* x, i64* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = (i64)x[i];
}

extern "C" __global__ void i64_to_bool(const i64* x, unsigned char* y, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) y[i] = x[i] != 0 ? 1 : 0;
}
