// Reductions: per row of a [rows, cols] matrix (one block per row, warp shuffles then a block reduction: sums, and
// max/min with their index) and per column (one thread per column, coalesced across the row).
#include "hpc/common.cuh"

using namespace hpc;

// out[r] = scale * sum_c x[r, c]   (mean with scale = 1/cols). blockDim.x threads per row.
extern "C" __global__ void sum_rows_f32(const float* x, float* out, i64 rows, i64 cols, float scale) {
  __shared__ float scratch[32];
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* row = x + r * cols;
    float s = 0.0f;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += row[c];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[r] = s * scale;
  }
}

// out[c] = scale * sum_r x[r, c]: the bias gradient of a linear layer. Threads of a warp read neighbouring columns.
extern "C" __global__ void sum_cols_f32(const float* x, float* out, i64 rows, i64 cols, float scale) {
  for (i64 c = global_index(); c < cols; c += grid_stride()) {
    float s = 0.0f;
    for (i64 r = 0; r < rows; r++) s += x[r * cols + c];
    out[c] = s * scale;
  }
}

// Max or min per row with the index of its first occurrence (the CPU backend's ties rule; a NaN wins, as there).
// One block per row: each thread scans a strided slice, then a shared-memory tree keeps (value, index) pairs.
__device__ __forceinline__ bool extreme_better(float v, i64 i, float best, i64 best_i, int is_max) {
  if (v != v) return best == best || i < best_i;  // NaN beats numbers; the first NaN wins
  if (best != best) return false;
  if (v == best) return i < best_i;
  return is_max ? v > best : v < best;
}

extern "C" __global__ void extreme_rows_f32(const float* x, float* values, i64* indices, i64 rows, i64 cols, int is_max) {
  __shared__ float best_v[256];
  __shared__ i64 best_i[256];
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    float v = 0.0f;
    i64 idx = -1;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
      float y = x[r * cols + c];
      if (idx < 0 || extreme_better(y, c, v, idx, is_max)) { v = y; idx = c; }
    }
    best_v[threadIdx.x] = v;
    best_i[threadIdx.x] = idx;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) {
        float o = best_v[threadIdx.x + s];
        i64 oi = best_i[threadIdx.x + s];
        if (oi >= 0 && (best_i[threadIdx.x] < 0 || extreme_better(o, oi, best_v[threadIdx.x], best_i[threadIdx.x], is_max))) {
          best_v[threadIdx.x] = o;
          best_i[threadIdx.x] = oi;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (values) values[r] = best_v[0];
      if (indices) indices[r] = best_i[0];
    }
    __syncthreads();
  }
}
