// The device halves of the gradient codecs (src/HpcEngine/Compression): error-feedback accumulation, top-k by
// threshold, int8 stochastic quantisation with the Philox stream, and sign packing. Formats match the CPU codecs'
// messages byte for byte, so a GPU rank and a CPU rank can exchange them.
#include "hpc/common.cuh"

using namespace hpc;

// v = g + residual (error feedback's input), written into v.
extern "C" __global__ void add_residual_f32(const float* g, const float* residual, float* v, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) v[i] = g[i] + residual[i];
}

// Counts elements with |v| > threshold: the host bisects the threshold until the count brackets k (top-k without a
// full sort, as threshold-based sparsification does); then select_above_f32 writes them.
extern "C" __global__ void count_above_f32(const float* v, i64 n, float threshold, unsigned int* count) {
  __shared__ float scratch[32];
  float c = 0.0f;
  for (i64 i = global_index(); i < n; i += grid_stride()) c += fabsf(v[i]) > threshold ? 1.0f : 0.0f;
  c = block_sum(c, scratch);
  if (threadIdx.x == 0) atomicAdd(count, (unsigned int)c);
}

// Appends (index, value) of every |v| > threshold into the pair arrays (order unspecified: the host sorts by index,
// as the CPU codec's message is in index order) and moves them out of the residual: residual = v, except zero there.
extern "C" __global__ void select_above_f32(const float* v, i64 n, float threshold, int* indices, float* values, unsigned int* cursor,
                                            unsigned int capacity, float* residual) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    float x = v[i];
    if (fabsf(x) > threshold) {
      unsigned int at = atomicAdd(cursor, 1u);
      if (at < capacity) { indices[at] = (int)i; values[at] = x; residual[i] = 0.0f; }
      else residual[i] = x;
    } else {
      residual[i] = x;
    }
  }
}

// QSGD with 127 levels: q = stochastic_round(v / scale * 127), scale = max|v| (from max-abs reduction on the host).
extern "C" __global__ void quantize_int8_f32(const float* v, signed char* q, i64 n, float scale, u64 seed, u64 start) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    if (scale == 0.0f) { q[i] = 0; continue; }
    float x = v[i] / scale * 127.0f, lo = floorf(x);
    float u = (float)philox_at(seed, start + (u64)(i >> 2), (int)(i & 3)) * (1.0f / 4294967296.0f);
    int r = (int)(u < x - lo ? lo + 1.0f : lo);
    q[i] = (signed char)max(-127, min(127, r));
  }
}

extern "C" __global__ void dequantize_int8_f32(const signed char* q, float* v, i64 n, float scale) {
  for (i64 i = global_index(); i < n; i += grid_stride()) v[i] = (float)q[i] * scale / 127.0f;
}

// One bit per element, little-endian within a byte (bit i % 8 of byte i / 8 set when v >= 0): one thread per byte.
extern "C" __global__ void sign_pack_f32(const float* v, unsigned char* bits, i64 n) {
  i64 bytes = (n + 7) / 8;
  for (i64 b = global_index(); b < bytes; b += grid_stride()) {
    unsigned char byte = 0;
    for (int j = 0; j < 8; j++) {
      i64 i = b * 8 + j;
      if (i < n && v[i] >= 0.0f) byte |= (unsigned char)(1u << j);
    }
    bits[b] = byte;
  }
}

extern "C" __global__ void sign_unpack_f32(const unsigned char* bits, float* v, i64 n, float scale) {
  for (i64 i = global_index(); i < n; i += grid_stride()) v[i] = (bits[i >> 3] >> (i & 7)) & 1 ? scale : -scale;
}
