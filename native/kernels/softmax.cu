// Softmax and log-softmax over the last dimension of a [rows, cols] matrix, their backward, and the fused
// cross-entropy forward+backward. One block per row. A row of up to 16 values per thread (4096 columns at 256
// threads), 16-byte aligned with cols % 4 == 0, is read once with float4 loads into registers — max, sum and write
// all come from there, so memory sees one read and one write (the kernel is bandwidth-bound). Other rows take three
// passes over global memory (L2 keeps the row hot between them).
#include "hpc/common.cuh"
#include "hpc/rowcache.cuh"

using namespace hpc;

__device__ __forceinline__ void row_stats(const float* row, i64 cols, float* scratch, float& mx, float& sum) {
  float m = -__int_as_float(0x7f800000);
  for (i64 c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, row[c]);
  mx = block_max(m, scratch);
  float s = 0.0f;
  for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += expf(row[c] - mx);
  sum = block_sum(s, scratch);
}

// The register-cached path of softmax / log-softmax for one row (see the file comment).
template <bool Log>
__device__ __forceinline__ void softmax_cached(const float* in, float* out, i64 cols, float* scratch) {
  RowCache v;
  v.load(in, cols);
  float mx = block_max(v.max(cols), scratch);
  float s = 0.0f;
#pragma unroll
  for (int k = 0; k < RowCache::kVec; k++)
    if (v.in_row(k, cols)) s += expf(v.x[k].x - mx) + expf(v.x[k].y - mx) + expf(v.x[k].z - mx) + expf(v.x[k].w - mx);
  float sum = block_sum(s, scratch);
  float inv = 1.0f / sum, lse = mx + logf(sum);
#pragma unroll
  for (int k = 0; k < RowCache::kVec; k++) {
    if (!v.in_row(k, cols)) continue;
    float4 a = v.x[k];
    float4 o = Log ? make_float4(a.x - lse, a.y - lse, a.z - lse, a.w - lse)
                   : make_float4(expf(a.x - mx) * inv, expf(a.y - mx) * inv, expf(a.z - mx) * inv, expf(a.w - mx) * inv);
    store4(out + v.column(k), o);
  }
}

extern "C" __global__ void softmax_f32(const float* x, float* y, i64 rows, i64 cols) {
  __shared__ float scratch[32];
  bool cached = RowCache::fits(x, y, cols);
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    if (cached) {
      softmax_cached<false>(in, out, cols, scratch);
      continue;
    }
    float mx, sum;
    row_stats(in, cols, scratch, mx, sum);
    float inv = 1.0f / sum;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) out[c] = expf(in[c] - mx) * inv;
  }
}

extern "C" __global__ void log_softmax_f32(const float* x, float* y, i64 rows, i64 cols) {
  __shared__ float scratch[32];
  bool cached = RowCache::fits(x, y, cols);
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* in = x + r * cols;
    float* out = y + r * cols;
    if (cached) {
      softmax_cached<true>(in, out, cols, scratch);
      continue;
    }
    float mx, sum;
    row_stats(in, cols, scratch, mx, sum);
    float lse = mx + logf(sum);
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) out[c] = in[c] - lse;
  }
}

// dx = y * (dy - sum(dy * y)) from the forward output y.
extern "C" __global__ void softmax_backward_f32(const float* y, const float* dy, float* dx, i64 rows, i64 cols) {
  __shared__ float scratch[32];
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* yr = y + r * cols;
    const float* g = dy + r * cols;
    float s = 0.0f;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += g[c] * yr[c];
    s = block_sum(s, scratch);
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) dx[r * cols + c] = yr[c] * (g[c] - s);
  }
}

// dx = dy - exp(y) * sum(dy) from the forward output y = log_softmax(x).
extern "C" __global__ void log_softmax_backward_f32(const float* y, const float* dy, float* dx, i64 rows, i64 cols) {
  __shared__ float scratch[32];
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* yr = y + r * cols;
    const float* g = dy + r * cols;
    float s = 0.0f;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) s += g[c];
    s = block_sum(s, scratch);
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) dx[r * cols + c] = g[c] - expf(yr[c]) * s;
  }
}

// Fused cross-entropy with label smoothing and an ignore index, mean over the rows that count:
//   loss_r = lse - (1 - eps) * x[t] - eps / C * sum_c x[c]
//   dlogits[r, c] = (softmax[c] - (1 - eps) * [c == t] - eps / C) / counted
// Writes per-row losses (0 for ignored rows) and the gradient in one pass over the logits; `counted` (device memory,
// from count_targets_f32; null: 1) stays on the device, so nothing is read back and the step can be graph-captured.
// A target outside [0, C) (the host checks them eagerly; not under capture) gives a NaN loss rather than a wild read.
extern "C" __global__ void count_targets_f32(const i64* targets, i64 rows, i64 ignore_index, float* counted) {
  __shared__ float scratch[32];
  float c = 0.0f;
  for (i64 r = threadIdx.x; r < rows; r += blockDim.x) c += targets[r] != ignore_index ? 1.0f : 0.0f;
  c = block_sum(c, scratch);
  if (threadIdx.x == 0) *counted = fmaxf(c, 1.0f);
}

extern "C" __global__ void cross_entropy_f32(const float* logits, const i64* targets, float* row_loss, float* dlogits,
                                             i64 rows, i64 cols, i64 ignore_index, float smoothing, const float* counted_ptr) {
  __shared__ float scratch[32];
  float counted = counted_ptr ? *counted_ptr : 1.0f;
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* in = logits + r * cols;
    float* g = dlogits + r * cols;
    i64 t = targets[r];
    if (t == ignore_index || t < 0 || t >= cols) {
      float fill = t == ignore_index ? 0.0f : __int_as_float(0x7fc00000);
      for (i64 c = threadIdx.x; c < cols; c += blockDim.x) g[c] = fill;
      if (threadIdx.x == 0) row_loss[r] = fill;
      continue;
    }
    float mx, sum;
    row_stats(in, cols, scratch, mx, sum);
    float lse = mx + logf(sum), inv = 1.0f / sum, uniform = smoothing / (float)cols;
    float sx = 0.0f;
    for (i64 c = threadIdx.x; c < cols; c += blockDim.x) {
      float v = in[c];
      sx += v;
      g[c] = (expf(v - mx) * inv - (c == t ? 1.0f - smoothing : 0.0f) - uniform) / counted;
    }
    sx = block_sum(sx, scratch);
    if (threadIdx.x == 0) row_loss[r] = lse - (1.0f - smoothing) * in[t] - uniform * sx;
  }
}
