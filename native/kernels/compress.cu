// The device halves of the dense message codecs (src/HpcEngine/Compression): encode a gradient into the CPU codec's
// message bytes and add a decoded message into a sum, so a GPU rank sends and reads the very bytes a CPU rank does.
//   sign: [scale: float32 LE][bit i%8 of byte i/8 set when v[i] >= 0]   decode: ±scale
//   int8: [scale: float32 LE][q_i: int8], q = stochastic round(v/scale·127) with the Philox stream, in the CPU's
//         arithmetic (the quotient in float, the rounding test in double)   decode: q·scale/127
// Messages sit at any byte offset inside an allgather buffer, so the header is read and written byte by byte.
#include "hpc/common.cuh"

using namespace hpc;

__device__ __forceinline__ void write_header(unsigned char* msg, float scale) {
  u32 b = __float_as_uint(scale);
  msg[0] = (unsigned char)b; msg[1] = (unsigned char)(b >> 8); msg[2] = (unsigned char)(b >> 16); msg[3] = (unsigned char)(b >> 24);
}

__device__ __forceinline__ float read_header(const unsigned char* msg) {
  return __uint_as_float((u32)msg[0] | ((u32)msg[1] << 8) | ((u32)msg[2] << 16) | ((u32)msg[3] << 24));
}

// One thread per message byte; the scale (mean |v|, computed by the caller) goes first.
extern "C" __global__ void sign_encode_f32(const float* v, const float* scale, unsigned char* msg, i64 n) {
  if (global_index() == 0) write_header(msg, *scale);
  i64 bytes = (n + 7) / 8;
  for (i64 b = global_index(); b < bytes; b += grid_stride()) {
    unsigned char byte = 0;
    for (int j = 0; j < 8; j++) {
      i64 i = b * 8 + j;
      if (i < n && v[i] >= 0.0f) byte |= (unsigned char)(1u << j);
    }
    msg[4 + b] = byte;
  }
}

extern "C" __global__ void sign_decode_add_f32(const unsigned char* msg, float* sum, i64 n) {
  float scale = read_header(msg);
  for (i64 i = global_index(); i < n; i += grid_stride()) sum[i] += (msg[4 + (i >> 3)] >> (i & 7)) & 1 ? scale : -scale;
}

// scale = max |v| (the caller's reduction); `start` is the codec's Philox counter for this encode.
extern "C" __global__ void int8_encode_f32(const float* v, const float* scale_ptr, unsigned char* msg, i64 n, u64 seed, u64 start) {
  float scale = *scale_ptr;
  if (global_index() == 0) write_header(msg, scale);
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    if (scale == 0.0f) { msg[4 + i] = 0; continue; }
    double x = (double)(v[i] / scale * 127.0f);
    double lo = floor(x);
    double u = (double)philox_at(seed, start + (u64)(i >> 2), (int)(i & 3)) * (1.0 / 4294967296.0);
    int q = (int)(u < x - lo ? lo + 1.0 : lo);
    q = max(-127, min(127, q));
    msg[4 + i] = (unsigned char)(signed char)q;
  }
}

extern "C" __global__ void int8_decode_add_f32(const unsigned char* msg, float* sum, i64 n) {
  float scale = read_header(msg);
  for (i64 i = global_index(); i < n; i += grid_stride()) sum[i] += (float)(signed char)msg[4 + i] * scale / 127.0f;
}
