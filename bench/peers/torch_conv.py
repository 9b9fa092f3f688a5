#!/usr/bin/python3
"""PyTorch's figures for the cnn's convolution layers, the peer of `hpcengine bench conv` (issue #20): each layer
(3x3, padding 1: 1->32 on 28x28, 32->64 on 14x14) at batch 128, forward, backward-data and backward-weight apart,
median ms and GFLOP/s, at the best of torch's 1 and 2 threads. Side by side with ours:

    /usr/bin/python3 bench/peers/torch_conv.py [--batch 128] [--iters 20] [--hpcengine "dotnet path/to/hpcengine.dll"]
"""
import argparse, json, os, subprocess, tempfile, time
import torch
import torch.nn.functional as F

LAYERS = [("conv1", 1, 32, 28), ("conv2", 32, 64, 14)]


def median_ms(fn, iters):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter(); fn(); ts.append((time.perf_counter() - t) * 1e3)
    return sorted(ts)[len(ts) // 2]


def layer_times(n, cin, cout, size, iters):
    torch.manual_seed(3)
    x = torch.randn(n, cin, size, size); w = torch.randn(cout, cin, 3, 3) * 0.1; gy = torch.randn(n, cout, size, size)
    with torch.no_grad():
        fwd = median_ms(lambda: F.conv2d(x, w, padding=1), iters)
    def backward(input_grad):
        xg = x.clone().requires_grad_(input_grad); wg = w.clone().requires_grad_(not input_grad)
        ts = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.5 or len(ts) < iters:
            y = F.conv2d(xg, wg, padding=1)
            t = time.perf_counter(); y.backward(gy); ms = (time.perf_counter() - t) * 1e3
            xg.grad = None; wg.grad = None
            if time.perf_counter() - t0 >= 0.5: ts.append(ms)
        return sorted(ts)[len(ts) // 2]
    return {"forward": fwd, "backward_data": backward(True), "backward_weight": backward(False)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--hpcengine", default=f"dotnet {os.path.dirname(__file__)}/../../src/HpcEngine.Cli/bin/Release/net10.0/hpcengine.dll")
    args = ap.parse_args()
    theirs = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, cin, cout, size in LAYERS:
            for p, ms in layer_times(args.batch, cin, cout, size, args.iters).items():
                theirs[(name, p)] = min(theirs.get((name, p), 1e9), ms)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(args.hpcengine.split() + ["bench", "conv", "--batch-size", str(args.batch), "--iters",
                                                 str(args.iters), "--json", f.name], check=True, stdout=subprocess.DEVNULL)
        ours = {(r["layer"], r["pass"]): r["ms"] for r in json.load(open(f.name))["layers"]}
    print("| layer | pass | ours ms | torch ms | ours GFLOP/s | torch GFLOP/s | speed ours/torch |")
    print("|---|---|---|---|---|---|---|")
    for name, cin, cout, size in LAYERS:
        gflop = 2.0 * args.batch * cout * size * size * cin * 9 / 1e9
        for p in ("forward", "backward_data", "backward_weight"):
            o, t = ours[(name, p)], theirs[(name, p)]
            print(f"| {name} {cin}->{cout} {size}x{size} | {p} | {o:.3f} | {t:.3f} | {gflop / o * 1e3:.1f} | "
                  f"{gflop / t * 1e3:.1f} | {t / o:.2f}x |")


if __name__ == "__main__":
    main()
