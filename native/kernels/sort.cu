// Row sorts of a [rows, n] matrix by a bitonic network over each row padded to a power of two p. The order is total —
// padding after everything, NaN above every number, equal values by original index — so the network (not stable by
// itself) gives exactly the stable sort the CPU gives. Keys and indices live in scratch [rows, p]; the host launches
// one compare-exchange step per (k, j) stage: log2(p)·(log2(p)+1)/2 launches, each touching every element once.
#include "hpc/common.cuh"

using namespace hpc;

// True when (va, ia) belongs before (vb, ib). Indices >= n mark padding.
__device__ __forceinline__ bool sort_before(float va, i64 ia, float vb, i64 ib, i64 n, int descending) {
  bool pa = ia >= n, pb = ib >= n;
  if (pa != pb) return pb;
  if (pa) return ia < ib;
  bool na = va != va, nb = vb != vb;
  if (na != nb) return descending ? na : nb;
  if (!na && va != vb) return descending ? va > vb : va < vb;
  return ia < ib;
}

extern "C" __global__ void sort_load_f32(const float* x, float* keys, i64* idx, i64 rows, i64 n, i64 p) {
  for (i64 i = global_index(); i < rows * p; i += grid_stride()) {
    i64 r = i / p, c = i % p;
    keys[i] = c < n ? x[r * n + c] : 0.0f;
    idx[i] = c;
  }
}

// One stage of the network: element c is exchanged with c ^ j; blocks of size k alternate direction.
extern "C" __global__ void bitonic_step_f32(float* keys, i64* idx, i64 rows, i64 n, i64 p, i64 j, i64 k, int descending) {
  for (i64 i = global_index(); i < rows * p; i += grid_stride()) {
    i64 r = i / p, c = i % p, partner = c ^ j;
    if (partner <= c) continue;
    i64 a = r * p + c, b = r * p + partner;
    bool up = (c & k) == 0;
    bool ordered = sort_before(keys[a], idx[a], keys[b], idx[b], n, descending);
    bool swap_needed = up ? !ordered : ordered;
    if (swap_needed) {
      float tk = keys[a];
      keys[a] = keys[b];
      keys[b] = tk;
      i64 ti = idx[a];
      idx[a] = idx[b];
      idx[b] = ti;
    }
  }
}

extern "C" __global__ void sort_store_f32(const float* keys, const i64* idx, float* values, i64* indices, i64 rows, i64 n, i64 p) {
  for (i64 i = global_index(); i < rows * n; i += grid_stride()) {
    i64 r = i / n, c = i % n;
    values[i] = keys[r * p + c];
    indices[i] = idx[r * p + c];
  }
}
