// Comparisons and logical ops (bool out, one byte per element) and where(), all through strides so broadcast
// operands are never materialised. The op codes are src/HpcEngine/Backends/Cpu/CompareKernels.cs's CompareOp.
#include "hpc/common.cuh"
#include "hpc/strided.cuh"

using namespace hpc;

template <typename T>
__device__ __forceinline__ bool compare(int op, T a, T b) {
  switch (op) {
    case 0: return a == b;
    case 1: return a != b;
    case 2: return a < b;
    case 3: return a <= b;
    case 4: return a > b;
    case 5: return a >= b;
    case 6: return (a != (T)0) && (b != (T)0);
    case 7: return (a != (T)0) || (b != (T)0);
    default: return (a != (T)0) != (b != (T)0);
  }
}

#define HPC_COMPARE(suffix, T)                                                                                   \
  extern "C" __global__ void compare_##suffix(const T* a, const T* b, unsigned char* out, i64 n, int op, Broadcast s) { \
    for (i64 i = global_index(); i < n; i += grid_stride()) {                                                  \
      i64 ao, bo;                                                                                              \
      strided_offsets(i, s, ao, bo);                                                                           \
      out[i] = compare<T>(op, a[ao], b[bo]) ? 1 : 0;                                                           \
    }                                                                                                          \
  }
HPC_COMPARE(f32, float)
HPC_COMPARE(i64, i64)
HPC_COMPARE(i32, int)

// out = condition ? a : b (condition one byte per element; a, b of one 4-byte type: the bits are copied).
extern "C" __global__ void where_32(const unsigned char* cond, const u32* a, const u32* b, u32* out, i64 n, Broadcast3 s) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 co, ao, bo;
    strided_offsets3(i, s, co, ao, bo);
    out[i] = cond[co] ? a[ao] : b[bo];
  }
}

extern "C" __global__ void where_64(const unsigned char* cond, const u64* a, const u64* b, u64* out, i64 n, Broadcast3 s) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 co, ao, bo;
    strided_offsets3(i, s, co, ao, bo);
    out[i] = cond[co] ? a[ao] : b[bo];
  }
}
