// Fused optimizer steps: one pass over parameter, gradient and state per step instead of one kernel per term.
// Semantics are torch.optim's, as the CPU optimizers (tests compare both against PyTorch trajectories).
#include "hpc/common.cuh"

using namespace hpc;

// Advances a parameter's Adam step count t (a float on the device) and writes bias = [1 - beta1^t, 1 - beta2^t],
// computed in double and rounded once, as the CPU optimizer does: the step reads nothing back (graph-capturable).
extern "C" __global__ void adam_advance_f32(float* step, float* bias, double beta1, double beta2) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  double t = (double)*step + 1.0;
  *step = (float)t;
  bias[0] = (float)(1.0 - pow(beta1, t));
  bias[1] = (float)(1.0 - pow(beta2, t));
}

// Adam / AdamW. decoupled = 1: AdamW (p -= lr * wd * p first); 0: Adam (g += wd * p). bias from adam_advance_f32.
// The learning rate is read from device memory (the optimizer writes it when it is set), so a CUDA-graph replay
// follows a schedule.
extern "C" __global__ void adam_f32(float* p, const float* g, float* m, float* v, i64 n, const float* lr_ptr, float beta1, float beta2,
                                    float eps, float weight_decay, int decoupled, const float* bias) {
  float lr = *lr_ptr, bias1 = bias[0], bias2 = bias[1];
  float step = lr / bias1, inv_sqrt_bias2 = rsqrtf(bias2);
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    float w = p[i], gi = g[i];
    if (weight_decay != 0.0f) {
      if (decoupled) w -= lr * weight_decay * w;
      else gi += weight_decay * w;
    }
    float mi = fmaf(beta1, m[i], (1.0f - beta1) * gi);
    float vi = fmaf(beta2, v[i], (1.0f - beta2) * gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] = w - step * mi / (sqrtf(vi) * inv_sqrt_bias2 + eps);
  }
}

// SGD with momentum (torch semantics: buf = mu * buf + (1 - dampening) * g; first step buf = g), Nesterov and
// weight decay. first = 1 on the first step.
extern "C" __global__ void sgd_f32(float* p, const float* g, float* buf, i64 n, const float* lr_ptr, float momentum, float dampening,
                                   float weight_decay, int nesterov, int first) {
  float lr = *lr_ptr;
  for (i64 i = global_index(); i < n; i += grid_stride()) {
    float gi = g[i];
    if (weight_decay != 0.0f) gi += weight_decay * p[i];
    if (momentum != 0.0f) {
      float b = first ? gi : fmaf(momentum, buf[i], (1.0f - dampening) * gi);
      buf[i] = b;
      gi = nesterov ? fmaf(momentum, b, gi) : b;
    }
    p[i] -= lr * gi;
  }
}
