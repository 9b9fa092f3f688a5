// Inclusive scans (cumsum, cumprod, cummax/cummin with indices, logcumsumexp) of a contiguous [outer, n, inner] block
// along n. Each scan is an associative combine of (value, index) pairs, so a line can be split into chunks: every
// thread folds its chunk, the block scans the chunk totals, and every thread folds its chunk again from its prefix.
// Lines with inner > 1 (a scan over a leading dim) are many and strided: one thread per line walks it in order,
// neighbouring threads reading neighbouring addresses.
#include "hpc/common.cuh"

using namespace hpc;

// op: 0 sum, 1 prod, 2 max, 3 min, 4 logsumexp (ScanOp's order). index < 0 marks the empty prefix.
struct Acc {
  float v;
  i64 i;
};

__device__ __forceinline__ Acc scan_identity(int op) {
  Acc a;
  a.v = op == 1 ? 1.0f : op == 4 ? -__int_as_float(0x7f800000) : 0.0f;
  a.i = -1;
  return a;
}

// a is the earlier part of the line, b the later; PyTorch's rules: a NaN sticks (the last NaN's index), ties move
// the index of cummax/cummin on, logcumsumexp of all −inf is −inf.
__device__ __forceinline__ Acc scan_combine(int op, Acc a, Acc b) {
  if (b.i < 0) return a;
  if (a.i < 0) return b;
  Acc r;
  r.i = b.i;
  if (op == 0) {
    r.v = a.v + b.v;
  } else if (op == 1) {
    r.v = a.v * b.v;
  } else if (op == 2 || op == 3) {
    if (b.v != b.v) return b;
    if (a.v != a.v) return a;
    return (op == 2 ? b.v >= a.v : b.v <= a.v) ? b : a;
  } else {
    if (a.v != a.v || b.v != b.v) {
      r.v = a.v + b.v;
    } else {
      float m = fmaxf(a.v, b.v);
      r.v = isinf(m) ? m : m + log1pf(expf(-fabsf(a.v - b.v)));
    }
  }
  return r;
}

__device__ __forceinline__ void scan_store(float* values, i64* indices, i64 at, Acc a) {
  values[at] = a.v;
  if (indices) indices[at] = a.i;
}

// One block per line of a [lines, n] matrix (inner == 1). blockDim.x <= 256.
extern "C" __global__ void scan_rows_f32(const float* x, float* values, i64* indices, i64 lines, i64 n, int op) {
  __shared__ Acc prefix[256];
  i64 chunk = (n + blockDim.x - 1) / blockDim.x;
  for (i64 l = blockIdx.x; l < lines; l += gridDim.x) {
    const float* row = x + l * n;
    i64 start = threadIdx.x * chunk, end = min(n, start + chunk);
    Acc a = scan_identity(op);
    for (i64 k = start; k < end; k++) {
      Acc e = {row[k], k};
      a = scan_combine(op, a, e);
    }
    prefix[threadIdx.x] = a;
    __syncthreads();
    if (threadIdx.x == 0) {  // exclusive scan of the chunk totals (at most 256, in order)
      Acc run = scan_identity(op);
      for (int t = 0; t < blockDim.x; t++) {
        Acc total = prefix[t];
        prefix[t] = run;
        run = scan_combine(op, run, total);
      }
    }
    __syncthreads();
    a = prefix[threadIdx.x];
    for (i64 k = start; k < end; k++) {
      Acc e = {row[k], k};
      a = scan_combine(op, a, e);
      scan_store(values + l * n, indices ? indices + l * n : indices, k, a);
    }
    __syncthreads();
  }
}

// One thread per (outer, inner) line, walking n in order.
extern "C" __global__ void scan_lines_f32(const float* x, float* values, i64* indices, i64 outer, i64 n, i64 inner, int op) {
  for (i64 l = global_index(); l < outer * inner; l += grid_stride()) {
    i64 base = (l / inner) * n * inner + l % inner;
    Acc a = scan_identity(op);
    for (i64 k = 0; k < n; k++) {
      Acc e = {x[base + k * inner], k};
      a = scan_combine(op, a, e);
      scan_store(values, indices, base + k * inner, a);
    }
  }
}
