#!/usr/bin/env python3
"""The GPU peer: PyTorch (2.x with CUDA, the lent host's) on the workloads of the CUDA issue, for side-by-side ratios
with `hpcengine bench gpu` in the same call on the same device.

    python3 bench/peers/torch_gpu.py [--json FILE] [--iters 50]

Workloads: GEMM fp32 (TF32 off), TF32 and bf16 at 4096³ and 8192³ (TFLOP/s); softmax, layer norm and elementwise add
on a 16384×4096 fp32 matrix (GB/s counted as bytes read + written once); one mlp-wide training step (784-1024-1024-10,
batch 512, Adam, eager) in ms. Timing: CUDA events around each iteration after a warm-up; the median is reported.
"""
import argparse, json, statistics, sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def timed(fn, iters):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--iters", type=int, default=50)
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_gpu.py: no CUDA device visible to PyTorch", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    rows = []
    for n in (4096, 8192):
        for mode in ("fp32", "tf32", "bf16"):
            torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
            dtype = torch.bfloat16 if mode == "bf16" else torch.float32
            x = torch.randn(n, n, device=dev, dtype=dtype)
            y = torch.randn(n, n, device=dev, dtype=dtype)
            s = timed(lambda: x @ y, max(5, a.iters // 5))
            rows.append({"workload": f"gemm {mode} {n}^3", "seconds": s, "tflops": 2 * n ** 3 / s / 1e12})
    torch.backends.cuda.matmul.allow_tf32 = False
    m = torch.randn(16384, 4096, device=dev)
    w = torch.randn(4096, device=dev)
    b = torch.randn(4096, device=dev)
    other = torch.randn_like(m)
    nbytes = m.numel() * 4
    for name, fn, moved in (("softmax 16384x4096", lambda: F.softmax(m, -1), 2 * nbytes),
                            ("layernorm 16384x4096", lambda: F.layer_norm(m, (4096,), w, b), 2 * nbytes),
                            ("add 16384x4096", lambda: m + other, 3 * nbytes)):
        s = timed(fn, a.iters)
        rows.append({"workload": name, "seconds": s, "gbps": moved / s / 1e9})
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)).to(dev)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    xb = torch.randn(512, 1, 28, 28, device=dev)
    yb = torch.randint(0, 10, (512,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()

    s = timed(step, a.iters)
    rows.append({"workload": "mlp-wide step b512 adam", "seconds": s, "ms": s * 1e3})
    device = torch.cuda.get_device_name(0)
    for r in rows:
        fig = r.get("tflops") or r.get("gbps") or r.get("ms")
        unit = "TFLOP/s" if "tflops" in r else "GB/s" if "gbps" in r else "ms"
        print(f"{r['workload']:<28} {fig:10.1f} {unit}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"peer": f"pytorch {torch.__version__}", "device": device, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
