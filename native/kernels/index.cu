// gather, scatter and scatter_add along one dim, for any rank up to 8. The index tensor (int64) is read through its strides,
// so index_select's 1-D index is passed expanded (stride 0 off the picked dim) and never materialised. Indices are
// range-checked on the host before launch (an out-of-range read here would be a silent fault).
#include "hpc/common.cuh"

using namespace hpc;

// Shapes and strides for one gather/scatter: `shape` is the index's (= gather's output) shape; x_stride the strided
// tensor's (gather: the source; scatter: the destination); i_stride the index's; o_stride the other operand's
// (gather: the output, contiguous; scatter: the source).
struct IndexShape {
  int ndim, dim;
  i64 shape[8];
  i64 x_stride[8];
  i64 i_stride[8];
  i64 o_stride[8];
};

__device__ __forceinline__ void index_offsets(i64 i, const IndexShape& s, const i64* index, i64& xo, i64& oo) {
  i64 rest = i, io = 0;
  xo = 0;
  oo = 0;
  for (int d = s.ndim - 1; d >= 0; d--) {
    i64 c = rest % s.shape[d];
    rest /= s.shape[d];
    io += c * s.i_stride[d];
    oo += c * s.o_stride[d];
    if (d != s.dim) xo += c * s.x_stride[d];
  }
  xo += index[io] * s.x_stride[s.dim];
}

// out[..., i, ...] = x[..., index[..., i, ...], ...] (4- or 8-byte elements: the bits are copied).
template <typename T>
__device__ __forceinline__ void gather(const T* x, const i64* index, T* out, i64 n, const IndexShape& s) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 xo, oo;
    index_offsets(i, s, index, xo, oo);
    out[oo] = x[xo];
  }
}

extern "C" __global__ void gather_32(const u32* x, const i64* index, u32* out, i64 n, IndexShape s) { gather(x, index, out, n, s); }
extern "C" __global__ void gather_64(const u64* x, const i64* index, u64* out, i64 n, IndexShape s) { gather(x, index, out, n, s); }

// x[..., index[..., i, ...], ...] = src[..., i, ...]; which of several writes to one place lands is unspecified (as
// PyTorch's scatter documents).
template <typename T>
__device__ __forceinline__ void scatter(T* x, const i64* index, const T* src, i64 n, const IndexShape& s) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 xo, so;
    index_offsets(i, s, index, xo, so);
    x[xo] = src[so];
  }
}

extern "C" __global__ void scatter_32(u32* x, const i64* index, const u32* src, i64 n, IndexShape s) { scatter(x, index, src, n, s); }
extern "C" __global__ void scatter_64(u64* x, const i64* index, const u64* src, i64 n, IndexShape s) { scatter(x, index, src, n, s); }

// x[..., index[..., i, ...], ...] += src[..., i, ...]; repeated indices accumulate (atomics: the order of the additions
// is not fixed, so sums over duplicates may differ from the CPU in the last bit).
extern "C" __global__ void scatter_add_f32(float* x, const i64* index, const float* src, i64 n, IndexShape s) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 xo, so;
    index_offsets(i, s, index, xo, so);
    atomicAdd(x + xo, src[so]);
  }
}
