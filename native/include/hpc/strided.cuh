// Strided addressing shared by the kernels that read views: a contiguous output of shape `shape` (row-major flat
// index i) and up to three operands read through their own strides (0 on a broadcast dimension), as the CPU
// backend's StridedLoop does. Up to 8 dimensions, passed by value.
#pragma once
#include "hpc/common.cuh"

namespace hpc {

struct Broadcast {
  int ndim;
  i64 shape[8];
  i64 a_stride[8];
  i64 b_stride[8];
};

// Where flat (row-major) index i of s.shape sits in the two layouts a_stride and b_stride.
__device__ __forceinline__ void strided_offsets(i64 i, const Broadcast& s, i64& ao, i64& bo) {
  i64 rest = i;
  ao = 0;
  bo = 0;
  for (int d = s.ndim - 1; d >= 0; d--) {
    i64 idx = rest % s.shape[d];
    rest /= s.shape[d];
    ao += idx * s.a_stride[d];
    bo += idx * s.b_stride[d];
  }
}

// Three operands (where: condition, a, b).
struct Broadcast3 {
  int ndim;
  i64 shape[8];
  i64 stride[3][8];
};

__device__ __forceinline__ void strided_offsets3(i64 i, const Broadcast3& s, i64& o0, i64& o1, i64& o2) {
  i64 rest = i;
  o0 = o1 = o2 = 0;
  for (int d = s.ndim - 1; d >= 0; d--) {
    i64 idx = rest % s.shape[d];
    rest /= s.shape[d];
    o0 += idx * s.stride[0][d];
    o1 += idx * s.stride[1][d];
    o2 += idx * s.stride[2][d];
  }
}

}  // namespace hpc
