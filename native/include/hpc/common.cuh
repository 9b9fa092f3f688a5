// Shared device helpers for the engine's kernels. No CUDA toolkit header may be included here or in any kernel:
// NVRTC on a machine without the toolkit cannot find them. The CUDA issue fills this with vector loads,
// warp/block reductions, bf16/fp16 conversion through PTX and the Philox generator (same stream as the CPU).
#pragma once

namespace hpc {

// bf16 is the top half of an fp32; round to nearest even, as the CPU backend's BFloat16Bits does.
__device__ __forceinline__ unsigned short float_to_bf16_bits(float f) {
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}

__device__ __forceinline__ float bf16_bits_to_float(unsigned short b) {
  return __uint_as_float(((unsigned int)b) << 16);
}

}  // namespace hpc
