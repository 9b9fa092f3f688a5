// Elementwise families: binary ops (same shape, contiguous: 16-byte vector path; or broadcast through strides),
// ops with a scalar, unary activations and their backward, fill. Grid-stride loops throughout.
// Napkin math (H100, 16384×4096 fp32 add): 3 × 268 MB moved; at ~3 TB/s that is ~0.27 ms — the kernel is pure
// bandwidth, so the only things that matter are 16-byte accesses and enough bytes in flight (a few waves of blocks).
#include "hpc/common.cuh"
#include "hpc/strided.cuh"

using namespace hpc;

struct Add { __device__ static float f(float a, float b) { return a + b; } };
struct Sub { __device__ static float f(float a, float b) { return a - b; } };
struct Mul { __device__ static float f(float a, float b) { return a * b; } };
struct Div { __device__ static float f(float a, float b) { return a / b; } };
// NaN propagates (as torch.maximum and the CPU backend), unlike fmaxf/fminf, which return the other operand.
struct Max { __device__ static float f(float a, float b) { return (a > b || a != a) ? a : b; } };
struct Min { __device__ static float f(float a, float b) { return (a < b || a != a) ? a : b; } };
struct Pow { __device__ static float f(float a, float b) { return powf(a, b); } };
struct Atan2 { __device__ static float f(float a, float b) { return atan2f(a, b); } };
struct Fmod { __device__ static float f(float a, float b) { return fmodf(a, b); } };
// PyTorch's remainder: fmod moved by one divisor when its sign differs from the divisor's (Python's %).
struct Remainder {
  __device__ static float f(float a, float b) {
    float m = fmodf(a, b);
    return (m != 0.0f && ((m < 0.0f) != (b < 0.0f))) ? m + b : m;
  }
};
struct CopySign { __device__ static float f(float a, float b) { return copysignf(a, b); } };

template <typename Op>
__device__ void binary_contiguous(const float* a, const float* b, float* out, i64 n) {
  bool aligned = ((((u64)a) | ((u64)b) | ((u64)out)) & 15) == 0;
  i64 start = global_index(), stride = grid_stride();
  if (aligned) {
    i64 n4 = n / 4;
    for (i64 i = start; i < n4; i += stride) {
      float4 x = load4(a + 4 * i), y = load4(b + 4 * i);
      store4(out + 4 * i, make_float4(Op::f(x.x, y.x), Op::f(x.y, y.y), Op::f(x.z, y.z), Op::f(x.w, y.w)));
    }
    for (i64 i = 4 * n4 + start; i < n; i += stride) out[i] = Op::f(a[i], b[i]);
  } else {
    for (i64 i = start; i < n; i += stride) out[i] = Op::f(a[i], b[i]);
  }
}

#define HPC_BINARY(name, Op)                                                                          \
  extern "C" __global__ void name##_f32(const float* a, const float* b, float* out, i64 n) {         \
    binary_contiguous<Op>(a, b, out, n);                                                            \
  }
HPC_BINARY(add, Add)
HPC_BINARY(sub, Sub)
HPC_BINARY(mul, Mul)
HPC_BINARY(div, Div)
HPC_BINARY(maximum, Max)
HPC_BINARY(minimum, Min)
HPC_BINARY(pow, Pow)
HPC_BINARY(atan2, Atan2)
HPC_BINARY(fmod, Fmod)
HPC_BINARY(remainder, Remainder)
HPC_BINARY(copysign, CopySign)

template <typename Op>
__device__ void binary_broadcast(const float* a, const float* b, float* out, i64 n, Broadcast s) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 ao, bo;
    strided_offsets(i, s, ao, bo);
    out[i] = Op::f(a[ao], b[bo]);
  }
}

#define HPC_BROADCAST(name, Op)                                                                                 \
  extern "C" __global__ void name##_broadcast_f32(const float* a, const float* b, float* out, i64 n, Broadcast s) { \
    binary_broadcast<Op>(a, b, out, n, s);                                                                    \
  }
HPC_BROADCAST(add, Add)
HPC_BROADCAST(sub, Sub)
HPC_BROADCAST(mul, Mul)
HPC_BROADCAST(maximum, Max)
HPC_BROADCAST(minimum, Min)
HPC_BROADCAST(pow, Pow)
HPC_BROADCAST(div, Div)
HPC_BROADCAST(atan2, Atan2)
HPC_BROADCAST(fmod, Fmod)
HPC_BROADCAST(remainder, Remainder)
HPC_BROADCAST(copysign, CopySign)

// out = alpha * x + beta (covers add-scalar, mul-scalar, neg, affine rescaling).
extern "C" __global__ void affine_f32(const float* x, float* out, float alpha, float beta, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) out[i] = fmaf(alpha, x[i], beta);
}

extern "C" __global__ void pow_scalar_f32(const float* x, float* out, float p, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) out[i] = powf(x[i], p);
}

// Fill with one element's bit pattern (the host encodes the value in the tensor's dtype), for every element size:
// a scalar operand or a constant never needs a host-to-device copy, so it can be captured in a graph.
#define HPC_FILL(bits, T)                                                                              \
  extern "C" __global__ void fill_b##bits(T* out, u64 pattern, i64 n) {                               \
    T v = (T)pattern;                                                                                 \
    for (i64 i = global_index(); i < n; i += grid_stride()) out[i] = v;                              \
  }
HPC_FILL(8, unsigned char)
HPC_FILL(16, unsigned short)
HPC_FILL(32, u32)
HPC_FILL(64, u64)

// --- unary activations and their backward (dx = dy * f'(x), from the saved input or output) ---------------------
__device__ __forceinline__ float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

__device__ __forceinline__ float gelu_tanh_grad(float x) {
  const float k = 0.7978845608028654f;
  float u = k * (x + 0.044715f * x * x * x), t = tanhf(u);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
}

#define HPC_UNARY(name, expr)                                                          \
  extern "C" __global__ void name##_f32(const float* x, float* out, i64 n) {           \
    for (i64 i = global_index(); i < n; i += grid_stride()) { float v = x[i]; out[i] = (expr); } \
  }
HPC_UNARY(relu, v > 0.0f || v != v ? v : 0.0f)
HPC_UNARY(gelu, gelu_tanh(v))
HPC_UNARY(sigmoid, 1.0f / (1.0f + expf(-v)))
HPC_UNARY(tanh, tanhf(v))
HPC_UNARY(exp, expf(v))
HPC_UNARY(log, logf(v))
HPC_UNARY(sqrt, sqrtf(v))
HPC_UNARY(abs, fabsf(v))
HPC_UNARY(silu, v / (1.0f + expf(-v)))
HPC_UNARY(log1p, log1pf(v))
HPC_UNARY(rsqrt, 1.0f / sqrtf(v))
HPC_UNARY(gelu_erf, 0.5f * v * (1.0f + erff(v * 0.7071067811865476f)))
HPC_UNARY(sign, v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v)
HPC_UNARY(reciprocal, 1.0f / v)
HPC_UNARY(sin, sinf(v))
HPC_UNARY(cos, cosf(v))
HPC_UNARY(tan, tanf(v))
HPC_UNARY(asin, asinf(v))
HPC_UNARY(acos, acosf(v))
HPC_UNARY(atan, atanf(v))
HPC_UNARY(sinh, sinhf(v))
HPC_UNARY(cosh, coshf(v))
HPC_UNARY(erf, erff(v))
HPC_UNARY(erfinv, erfinvf(v))
HPC_UNARY(expm1, expm1f(v))
HPC_UNARY(log2, log2f(v))
HPC_UNARY(log10, log10f(v))
HPC_UNARY(floor, floorf(v))
HPC_UNARY(ceil, ceilf(v))
HPC_UNARY(round, rintf(v))  // halves to even, as torch.round
HPC_UNARY(trunc, truncf(v))

// clamp into [lo, hi]; NaN stays NaN (the comparisons are false), as the CPU's TensorPrimitives.Max/Min.
extern "C" __global__ void clamp_f32(const float* x, float* out, i64 n, float lo, float hi) {
  for (i64 i = global_index(); i < n; i += grid_stride()) { float v = x[i]; out[i] = v < lo ? lo : v > hi ? hi : v; }
}

// With a parameter: leaky ReLU's negative slope.
extern "C" __global__ void leaky_relu_f32(const float* x, float* out, i64 n, float a) {
  for (i64 i = global_index(); i < n; i += grid_stride()) { float v = x[i]; out[i] = v > 0.0f ? v : v * a; }
}

extern "C" __global__ void leaky_relu_backward_f32(const float* x, const float* dy, float* dx, i64 n, float a) {
  for (i64 i = global_index(); i < n; i += grid_stride()) dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * a;
}

// Backward from the forward input x.
#define HPC_UNARY_BACKWARD(name, expr)                                                                        \
  extern "C" __global__ void name##_backward_f32(const float* x, const float* dy, float* dx, i64 n) {        \
    for (i64 i = global_index(); i < n; i += grid_stride()) { float v = x[i]; dx[i] = dy[i] * (expr); }     \
  }
HPC_UNARY_BACKWARD(relu, v > 0.0f ? 1.0f : 0.0f)
HPC_UNARY_BACKWARD(gelu, gelu_tanh_grad(v))
HPC_UNARY_BACKWARD(abs, v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : 0.0f)
HPC_UNARY_BACKWARD(log1p, 1.0f / (1.0f + v))
HPC_UNARY_BACKWARD(gelu_erf, 0.5f * (1.0f + erff(v * 0.7071067811865476f)) + v * 0.3989422804014327f * expf(-0.5f * v * v))
HPC_UNARY_BACKWARD(sin, cosf(v))
HPC_UNARY_BACKWARD(cos, -sinf(v))
HPC_UNARY_BACKWARD(tan, 1.0f / (cosf(v) * cosf(v)))
HPC_UNARY_BACKWARD(asin, rsqrtf(1.0f - v * v))
HPC_UNARY_BACKWARD(acos, -rsqrtf(1.0f - v * v))
HPC_UNARY_BACKWARD(atan, 1.0f / (1.0f + v * v))
HPC_UNARY_BACKWARD(sinh, coshf(v))
HPC_UNARY_BACKWARD(cosh, sinhf(v))
HPC_UNARY_BACKWARD(erf, 1.1283791670955126f * expf(-v * v))
HPC_UNARY_BACKWARD(erfinv, 0.8862269254527580f * expf(erfinvf(v) * erfinvf(v)))
HPC_UNARY_BACKWARD(expm1, expf(v))
HPC_UNARY_BACKWARD(log2, 1.0f / (v * 0.6931471805599453f))
HPC_UNARY_BACKWARD(log10, 1.0f / (v * 2.302585092994046f))
HPC_UNARY_BACKWARD(silu, (1.0f / (1.0f + expf(-v))) * (1.0f + v * (1.0f - 1.0f / (1.0f + expf(-v)))))

// Backward from the forward output y (cheaper where f' is a function of f).
extern "C" __global__ void sigmoid_backward_f32(const float* y, const float* dy, float* dx, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

extern "C" __global__ void tanh_backward_f32(const float* y, const float* dy, float* dx, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

// d rsqrt = -y³/2, d (1/x) = -y²
extern "C" __global__ void rsqrt_backward_f32(const float* y, const float* dy, float* dx, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) dx[i] = -0.5f * dy[i] * y[i] * y[i] * y[i];
}

extern "C" __global__ void reciprocal_backward_f32(const float* y, const float* dy, float* dx, i64 n) {
  for (i64 i = global_index(); i < n; i += grid_stride()) dx[i] = -dy[i] * y[i] * y[i];
}

// Copy between any two layouts of one shape: x read through a_stride, out written through b_stride (a gradient
// written into a strided view, e.g. the backward of a slice). By element size, so every dtype moves bit for bit.
template <typename T>
__device__ void strided_copy_any(const T* x, T* out, i64 n, const Broadcast& s) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 xo, oo;
    strided_offsets(i, s, xo, oo);
    out[oo] = x[xo];
  }
}

// Strided copy into a contiguous output (makes a non-contiguous view contiguous; also the copy of .To(device)).
template <typename T>
__device__ void strided_copy(const T* x, T* out, i64 n, const Broadcast& s) {
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    i64 off, unused;
    strided_offsets(i, s, off, unused);
    out[i] = x[off];
  }
}

#define HPC_STRIDED_COPY(bits, T)                                                                                  \
  extern "C" __global__ void strided_copy_any_b##bits(const T* x, T* out, i64 n, Broadcast s) { strided_copy_any<T>(x, out, n, s); } \
  extern "C" __global__ void strided_copy_b##bits(const T* x, T* out, i64 n, Broadcast s) { strided_copy<T>(x, out, n, s); }
HPC_STRIDED_COPY(8, unsigned char)
HPC_STRIDED_COPY(16, unsigned short)
HPC_STRIDED_COPY(32, u32)
HPC_STRIDED_COPY(64, u64)
