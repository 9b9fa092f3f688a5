// Layer norm over the last dimension: forward saves mean and rstd per row; backward computes dx per row and the
// weight/bias gradients per column (one thread per column over all rows: coalesced, no atomics, deterministic).
//   y = (x - mean) * rstd * w + b
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * w
#include "hpc/common.cuh"
#include "hpc/rowcache.cuh"

using namespace hpc;

// y = n·w + b with w and b optional (the CPU's affine rules).
__device__ __forceinline__ float affine(float n, const float* w, const float* b, i64 c) {
  return w ? (b ? fmaf(n, w[c], b[c]) : n * w[c]) : (b ? n + b[c] : n);
}

// The register-cached forward of one row (hpc/rowcache.cuh): one read of the row, one write.
__device__ __forceinline__ void layernorm_cached(const float* in, const float* w, const float* b, float* out, float* mean_out,
                                                 float* rstd_out, i64 cols, float eps, float* scratch) {
  RowCache v;
  v.load(in, cols);
  float mean = block_sum(v.sum(cols), scratch) / (float)cols;
  float q = 0.0f;
#pragma unroll
  for (int k = 0; k < RowCache::kVec; k++) {
    if (!v.in_row(k, cols)) continue;
    float4 a = v.x[k];
    float dx = a.x - mean, dy = a.y - mean, dz = a.z - mean, dw = a.w - mean;
    q += dx * dx + dy * dy + dz * dz + dw * dw;
  }
  float rstd = rsqrtf(block_sum(q, scratch) / (float)cols + eps);
#pragma unroll
  for (int k = 0; k < RowCache::kVec; k++) {
    if (!v.in_row(k, cols)) continue;
    i64 c = v.column(k);
    float4 a = v.x[k];
    store4(out + c, make_float4(affine((a.x - mean) * rstd, w, b, c), affine((a.y - mean) * rstd, w, b, c + 1),
                                affine((a.z - mean) * rstd, w, b, c + 2), affine((a.w - mean) * rstd, w, b, c + 3)));
  }
  if (threadIdx.x == 0) { *mean_out = mean; *rstd_out = rstd; }
}

extern "C" __global__ void layernorm_f32(const float* x, const float* w, const float* b, float* y, float* mean_out,
                                         float* rstd_out, i64 rows, i64 cols, float eps) {
  __shared__ float scratch[32];
  bool cached = RowCache::fits(x, y, cols);
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* in = x + r * cols;
    if (cached) {
      layernorm_cached(in, w, b, y + r * cols, mean_out + r, rstd_out + r, cols, eps, scratch);
      continue;
    }
    float s = 0.0f;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += in[c];
    float mean = block_sum(s, scratch) / (float)cols;
    float v = 0.0f;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) { float d = in[c] - mean; v += d * d; }
    float rstd = rsqrtf(block_sum(v, scratch) / (float)cols + eps);
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
      float n = (in[c] - mean) * rstd;
      y[r * cols + c] = affine(n, w, b, c);
    }
    if (threadIdx.x == 0) { mean_out[r] = mean; rstd_out[r] = rstd; }
  }
}

extern "C" __global__ void layernorm_backward_f32(const float* x, const float* w, const float* dy, const float* mean,
                                                  const float* rstd, float* dx, i64 rows, i64 cols) {
  __shared__ float scratch[32];
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* in = x + r * cols;
    const float* g = dy + r * cols;
    float m = mean[r], rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
      float gw = w ? g[c] * w[c] : g[c];
      sg += gw;
      sgx += gw * (in[c] - m) * rs;
    }
    sg = block_sum(sg, scratch) / (float)cols;
    sgx = block_sum(sgx, scratch) / (float)cols;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
      float gw = w ? g[c] * w[c] : g[c];
      float xhat = (in[c] - m) * rs;
      dx[r * cols + c] = rs * (gw - sg - xhat * sgx);
    }
  }
}

// Weight and bias gradients, first pass: partial column sums over chunks of rows, written to pw/pb [chunks, cols]
// (a thread per (chunk, column): coalesced reads, enough threads to fill the GPU even when cols is small); the
// host then sums the chunks with sum_cols_f32. Deterministic, no atomics.
extern "C" __global__ void layernorm_param_partial_f32(const float* x, const float* dy, const float* mean, const float* rstd,
                                                       float* pw, float* pb, i64 rows, i64 cols, i64 chunk) {
  i64 chunks = (rows + chunk - 1) / chunk;
  for (i64 t = global_index(); t < chunks * cols; t += grid_stride()) {
    i64 k = t / cols, c = t % cols;
    i64 r0 = k * chunk, r1 = min(rows, r0 + chunk);
    float sw = 0.0f, sb = 0.0f;
    for (i64 r = r0; r < r1; r++) {
      float g = dy[r * cols + c];
      sw += g * (x[r * cols + c] - mean[r]) * rstd[r];
      sb += g;
    }
    pw[t] = sw;
    pb[t] = sb;
  }
}
