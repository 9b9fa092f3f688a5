// Batch norm over x viewed as [N, C, L] (L = H·W, or 1 for [N, C]), as the CPU's BatchNormKernels: per channel the
// batch mean and biased variance over m = N·L values (two passes, one block per channel), then an elementwise
// y = x·scale + shift. Backward: per channel Σg and Σg·x̂ (one block per channel), then an elementwise dx:
//   training: dx = k·g + a·x + c0 with k = w·rstd, a = −k·rstd·mean(g·x̂), c0 = −k·mean(g) + k·rstd·μ·mean(g·x̂);
//   eval (fixed statistics): dx = k·g.   dw = Σ g·x̂, db = Σ g.
#include "hpc/common.cuh"

using namespace hpc;

// Element e (of m = n·l) of channel ch.
__device__ __forceinline__ i64 channel_offset(i64 e, i64 ch, i64 c, i64 l) {
  i64 i = e / l;
  return (i * c + ch) * l + (e - i * l);
}

extern "C" __global__ void batchnorm_stats_f32(const float* x, float* mean, float* rstd, i64 n, i64 c, i64 l, float eps) {
  __shared__ float scratch[32];
  i64 m = n * l;
  for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
    float s = 0.0f;
    for (i64 e = threadIdx.x; e < m; e += blockDim.x) s += x[channel_offset(e, ch, c, l)];
    float mu = block_sum(s, scratch) / (float)m;
    float q = 0.0f;
    for (i64 e = threadIdx.x; e < m; e += blockDim.x) {
      float d = x[channel_offset(e, ch, c, l)] - mu;
      q += d * d;
    }
    float rs = 1.0f / sqrtf(block_sum(q, scratch) / (float)m + eps);
    if (threadIdx.x == 0) { mean[ch] = mu; rstd[ch] = rs; }
  }
}

// y = x·scale + shift, scale = rstd·w, shift = b − μ·scale (w, b optional).
extern "C" __global__ void batchnorm_apply_f32(const float* x, float* y, const float* w, const float* b, const float* mean,
                                               const float* rstd, i64 total, i64 c, i64 l) {
  for (i64 e = global_index(); e < total; e += grid_stride()) {
    i64 ch = (e / l) % c;
    float scale = rstd[ch] * (w ? w[ch] : 1.0f), shift = (b ? b[ch] : 0.0f) - mean[ch] * scale;
    y[e] = x[e] * scale + shift;
  }
}

// sums[ch] = Σ g, sums[c + ch] = Σ g·x̂ over the channel.
extern "C" __global__ void batchnorm_backward_reduce_f32(const float* x, const float* g, const float* mean, const float* rstd,
                                                         float* sums, i64 n, i64 c, i64 l) {
  __shared__ float scratch[32];
  i64 m = n * l;
  for (i64 ch = blockIdx.x; ch < c; ch += gridDim.x) {
    float sg = 0.0f, sgx = 0.0f;
    for (i64 e = threadIdx.x; e < m; e += blockDim.x) {
      i64 o = channel_offset(e, ch, c, l);
      sg += g[o];
      sgx += g[o] * x[o];
    }
    sg = block_sum(sg, scratch);
    sgx = block_sum(sgx, scratch);
    if (threadIdx.x == 0) {
      sums[ch] = sg;
      sums[c + ch] = (sgx - mean[ch] * sg) * rstd[ch];  // Σ g·(x − μ)·rstd = (Σ g·x − μ Σ g)·rstd
    }
  }
}

extern "C" __global__ void batchnorm_backward_apply_f32(const float* x, const float* g, float* dx, const float* w, const float* mean,
                                                        const float* rstd, const float* sums, i64 total, i64 c, i64 l, float m,
                                                        int batch_stats) {
  for (i64 e = global_index(); e < total; e += grid_stride()) {
    i64 ch = (e / l) % c;
    float rs = rstd[ch], k = (w ? w[ch] : 1.0f) * rs;
    if (!batch_stats) { dx[e] = g[e] * k; continue; }
    float mean_g = sums[ch] / m, mean_gx = sums[c + ch] / m;
    float a = -k * rs * mean_gx, c0 = -k * mean_g + k * rs * mean[ch] * mean_gx;
    dx[e] = k * g[e] + (a * x[e] + c0);
  }
}
