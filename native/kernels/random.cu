// Random draws with the CPU backend's Philox stream: the same seed and offset give the same numbers on both
// backends, so dropout masks can be compared bit for bit in parity tests.
#include "hpc/common.cuh"

using namespace hpc;

// r[i] = value where uniform(i) < p, else 0: Tensor.Bernoulli's draw (and dropout's scaled keep mask, with
// value = 1/(1-p)). `threshold` = ceil(p * 2^24) compares the 24-bit uniform exactly as the CPU compares it against
// the double p (a float p would round and flip the elements that land between them).
extern "C" __global__ void bernoulli_f32(float* r, i64 n, u64 seed, u64 start, u32 threshold, float value) {
  for (i64 i = global_index(); i < n; i += grid_stride())
    r[i] = (philox_at(seed, start + (u64)(i >> 2), (int)(i & 3)) >> 8) < threshold ? value : 0.0f;
}

// The same draw inside a CUDA graph: the counter is start + *offset, and each replay writes *offset so the replay
// takes the numbers an eager step would take (src/HpcEngine.Cuda/CudaGraph.cs).
extern "C" __global__ void bernoulli_graph_f32(float* r, i64 n, u64 seed, const u64* offset, u64 start, u32 threshold, float value) {
  u64 first = start + *offset;
  for (i64 i = global_index(); i < n; i += grid_stride())
    r[i] = (philox_at(seed, first + (u64)(i >> 2), (int)(i & 3)) >> 8) < threshold ? value : 0.0f;
}
