// Random draws with the CPU backend's Philox stream: the same seed and offset give the same numbers on both
// backends, so dropout masks can be compared bit for bit in parity tests.
#include "hpc/common.cuh"

using namespace hpc;

// mask[i] = uniform(i) < keep; y = x * mask / keep. `start` is the generator's offset reserved for this draw.
extern "C" __global__ void dropout_f32(const float* x, float* y, unsigned char* mask, i64 n, u64 seed, u64 start, float keep) {
  float scale = keep > 0.0f ? 1.0f / keep : 0.0f;
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    bool k = uniform01(philox_at(seed, start + (u64)(i >> 2), (int)(i & 3))) < keep;
    mask[i] = k ? 1 : 0;
    y[i] = k ? x[i] * scale : 0.0f;
  }
}

extern "C" __global__ void dropout_backward_f32(const float* dy, const unsigned char* mask, float* dx, i64 n, float keep) {
  float scale = keep > 0.0f ? 1.0f / keep : 0.0f;
  for (i64 i = global_index(); i < n; i += grid_stride()) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

extern "C" __global__ void uniform_f32(float* y, i64 n, u64 seed, u64 start, float low, float high) {
  for (i64 i = global_index(); i < n; i += grid_stride())
    y[i] = low + (high - low) * uniform01(philox_at(seed, start + (u64)(i >> 2), (int)(i & 3)));
}
