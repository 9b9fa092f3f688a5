#!/usr/bin/python3
"""Where PyTorch's cnn training step spends its time, op by op, forward and backward apart — the peer of
`hpcengine bench step --model cnn --optimizer adam --profile` (issue #20), printed side by side with ours:

    /usr/bin/python3 bench/peers/torch_step_profile.py [--iters 30] [--threads 2] [--hpcengine "dotnet path/to/hpcengine.dll"]

PyTorch's side comes from torch.profiler over the same model, batch and optimizer as bench/peers/torch_cpu.py's step:
forward is each top-level op's inclusive CPU time (aten::conv2d with the convolution it calls, ...), backward each
autograd node's (autograd::engine::evaluate_function: ConvolutionBackward0, ...), update the optimizer's step and
zero_grad. The profiler's own overhead is in every figure, ours too (a clock read per op); compare the shares and
the large entries, not the last tenth of a millisecond.
"""
import argparse, json, os, subprocess, tempfile, time
import torch, torch.nn as nn, torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity

FORWARD = {"aten::conv2d": "conv2d", "aten::batch_norm": "batch_norm", "aten::relu": "relu",
           "aten::max_pool2d": "max_pool2d", "aten::linear": "linear", "aten::cross_entropy_loss": "cross_entropy",
           "aten::flatten": "reshape"}
BACKWARD = {"ConvolutionBackward0": "conv2d", "NativeBatchNormBackward0": "batch_norm", "ReluBackward0": "relu",
            "MaxPool2DWithIndicesBackward0": "max_pool2d", "AddmmBackward0": "linear", "TBackward0": "linear",
            "NllLossBackward0": "cross_entropy", "LogSoftmaxBackward0": "cross_entropy", "ViewBackward0": "reshape",
            "ReshapeAliasBackward0": "reshape", "torch::autograd::AccumulateGrad": "accumulate_grad"}
UPDATE = {"Optimizer.step#Adam.step": "optimizer.step", "Optimizer.zero_grad#Adam.zero_grad": "zero_grad"}


def torch_profile(iters, threads, batch):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x = torch.randn(batch, 1, 28, 28); y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True); F.cross_entropy(m(x), y).backward(); opt.step()

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for _ in range(iters):
            step()
        step_ms = (time.perf_counter() - t) * 1e3 / iters
    rows = {}
    for e in prof.key_averages():
        name = e.key
        phase = op = None
        if name in FORWARD:
            phase, op = "forward", FORWARD[name]
        elif name.startswith("autograd::engine::evaluate_function: "):
            node = name.split(": ", 1)[1]
            phase, op = "backward", BACKWARD.get(node, node)
        elif name in UPDATE:
            phase, op = "update", UPDATE[name]
        if phase:
            r = rows.setdefault((op, phase), [0.0, 0])
            r[0] += e.cpu_time_total / 1e3 / iters
            r[1] += e.count / iters
    return step_ms, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--hpcengine", default="dotnet src/HpcEngine.Cli/bin/Release/net10.0/hpcengine.dll")
    ap.add_argument("--json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "ours.json")
        subprocess.run(a.hpcengine.split() + ["bench", "step", "--model", "cnn", "--optimizer", "adam", "--profile",
                        "--iters", str(a.iters), "--batch-size", str(a.batch), "--threads", str(a.threads),
                        "--json", out], check=True, capture_output=True)
        ours = json.load(open(out))
    torch_ms, theirs = torch_profile(a.iters, a.threads, a.batch)
    mine = {(r["op"], r["phase"]): r["ms_per_step"] for r in ours["profile"] if r["phase"]}
    keys = sorted(set(mine) | set(theirs), key=lambda k: -(mine.get(k, 0) + theirs.get(k, [0])[0]))
    print(f"cnn b{a.batch} adam, {a.threads} threads: ours {ours['ms_per_step']:.2f} ms/step, torch {torch_ms:.2f} "
          f"ms/step (both profiled)\n")
    print("| op | phase | ours ms | torch ms | ours/torch time |\n|---|---|---|---|---|")
    table = []
    for op, phase in keys:
        o, t = mine.get((op, phase)), theirs.get((op, phase), [None])[0]
        ratio = f"{o / t:.2f}x" if o and t else "-"
        fmt = lambda v: f"{v:.3f}" if v is not None else "-"
        print(f"| {op} | {phase} | {fmt(o)} | {fmt(t)} | {ratio} |")
        table.append({"op": op, "phase": phase, "ours_ms": o, "torch_ms": t})
    for phase in ("forward", "backward", "update"):
        o = sum(v for (op, p), v in mine.items() if p == phase)
        t = sum(v[0] for (op, p), v in theirs.items() if p == phase)
        print(f"| **{phase} total** | | {o:.3f} | {t:.3f} | {o / t:.2f}x |")
    print(f"| **step** | | {ours['ms_per_step']:.3f} | {torch_ms:.3f} | {ours['ms_per_step'] / torch_ms:.2f}x |")
    if a.json:
        json.dump({"ours_ms_per_step": ours["ms_per_step"], "torch_ms_per_step": torch_ms, "ops": table},
                  open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
