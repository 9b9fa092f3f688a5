// Shared device helpers for the engine's kernels. No CUDA toolkit header may be included here or in any kernel:
// NVRTC on a machine without the toolkit cannot find them (docs/ARCHITECTURE.md, Kernels). Everything below uses
// only what NVRTC provides built in: the vector types (float4 ...), __shfl_xor_sync, __float_as_uint and friends.
#pragma once

namespace hpc {

typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

// --- grid-stride loops ------------------------------------------------------------------------------------------
// Every elementwise kernel walks i = blockIdx.x * blockDim.x + threadIdx.x in steps of gridDim.x * blockDim.x, so the
// host can cap the grid (a few waves of the SMs) for any n, and n = 0 launches nothing useful but is still valid.
__device__ __forceinline__ i64 global_index() { return (i64)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ i64 grid_stride() { return (i64)gridDim.x * blockDim.x; }

// --- 16-byte vector access ---------------------------------------------------------------------------------------
// A float4 load moves 16 bytes per instruction: the widest global access, which memory-bound kernels need to get
// near peak bandwidth. Callers use it only on 16-byte-aligned pointers (the allocator aligns every block to 256 B)
// and finish the n % 4 tail with scalar accesses.
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }

// --- reductions -------------------------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` is 32 floats of shared memory; the trailing barrier lets the caller reuse it at once.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  v = warp_sum(v);
  __syncthreads();
  return v;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -__int_as_float(0x7f800000);
  v = warp_max(v);
  __syncthreads();
  return v;
}

// --- bf16 / fp16 ----------------------------------------------------------------------------------------------
// bf16 is the top half of an fp32; round to nearest even, as the CPU backend's BFloat16Bits does (NaN stays NaN).
__device__ __forceinline__ unsigned short float_to_bf16_bits(float f) {
  u32 u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}

__device__ __forceinline__ float bf16_bits_to_float(unsigned short b) { return __uint_as_float(((u32)b) << 16); }

// fp16 through the PTX conversion instructions (round to nearest even), no cuda_fp16.h needed.
__device__ __forceinline__ unsigned short float_to_half_bits(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}

__device__ __forceinline__ float half_bits_to_float(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

// --- Philox 4x32-10 ----------------------------------------------------------------------------------------------
// The same generator as src/HpcEngine/Random/Philox.cs: element i of a draw that starts at block `start` uses lane
// i % 4 of the block at counter start + i / 4 under key `seed`, so masks match the CPU backend bit for bit.
__device__ __forceinline__ u32 philox_at(u64 seed, u64 counter, int lane) {
  u32 c0 = (u32)counter, c1 = (u32)(counter >> 32), c2 = 0, c3 = 0;
  u32 k0 = (u32)seed, k1 = (u32)(seed >> 32);
#pragma unroll
  for (int r = 0; r < 10; r++) {
    u32 hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    u32 hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    u32 n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return lane == 0 ? c0 : lane == 1 ? c1 : lane == 2 ? c2 : c3;
}

// 24 random bits to a float in [0, 1), as Philox.ToUniform.
__device__ __forceinline__ float uniform01(u32 bits) { return (bits >> 8) * (1.0f / 16777216.0f); }

}  // namespace hpc
