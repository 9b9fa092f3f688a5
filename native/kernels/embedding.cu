// Embedding lookup and its backward (scatter-add of the output gradient into the table's gradient rows).
#include "hpc/common.cuh"

using namespace hpc;

// out[i, :] = table[ids[i], :]; one block per looked-up row, threads across the embedding dimension.
extern "C" __global__ void embedding_f32(const float* table, const i64* ids, float* out, i64 count, i64 dim, i64 vocab) {
  for (i64 i = blockIdx.x; i < count; i += gridDim.x) {
    i64 id = ids[i];
    if (id < 0 || id >= vocab) continue;  // the host validates ids before launching; never read out of bounds
    for (i64 d = threadIdx.x; d < dim; d += blockDim.x) out[i * dim + d] = table[id * dim + d];
  }
}

// dtable[ids[i], :] += dout[i, :]. Repeated ids collide, hence atomics; the order of float additions can differ from
// run to run (last-bit differences), which the parity tests' tolerance allows.
extern "C" __global__ void embedding_backward_f32(const float* dout, const i64* ids, float* dtable, i64 count, i64 dim, i64 vocab) {
  for (i64 i = blockIdx.x; i < count; i += gridDim.x) {
    i64 id = ids[i];
    if (id < 0 || id >= vocab) continue;
    for (i64 d = threadIdx.x; d < dim; d += blockDim.x) atomicAdd(dtable + id * dim + d, dout[i * dim + d]);
  }
}
