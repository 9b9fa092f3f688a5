#!/usr/bin/python3
"""Side-by-side CPU figures: HpcEngine (`hpcengine bench`) against PyTorch (Debian python3-torch + OpenBLAS), for
kernels (GEMM, softmax, layer norm, add) and whole training steps (forward, loss, backward, optimizer).

    /usr/bin/python3 bench/peers/torch_cpu.py [--rounds 3] [--only kernels|steps] [--hpcengine "dotnet path/to/hpcengine.dll"]

Build ours first: dotnet build -c Release src/HpcEngine.Cli. The peer runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset (so OpenBLAS picks the machine's best kernels) under (OPENBLAS_NUM_THREADS, torch threads) = (1,1), (1,2),
(2,2), keeping its best; see ../shared/design/ANCHORS.md. Rounds interleave ours and theirs so that drift of the
machine hits both alike; each figure is the median over rounds of each side's median time. Prints a table of
ours / theirs and writes it as JSON with --json.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

KERNELS = [("gemm", 1024), ("gemm", 2048), ("softmax", 4096), ("layernorm", 4096), ("add", 4096)]
# (model, batch size, optimizer): the two step targets of the training-stack issue, and the cnn for reference.
STEPS = [("mlp", 128, "sgd"), ("mlp-wide", 512, "adam"), ("cnn", 128, "adam")]

STEP_PEER = r'''
import sys, time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
model, bs, optname, iters = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
torch.manual_seed(0)
if model == "mlp":
    m = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 100), nn.ReLU(), nn.Linear(100, 10))
elif model == "mlp-wide":
    m = nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10))
else:
    m = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.SGD(m.parameters(), 0.01, momentum=0.9) if optname == "sgd" else torch.optim.Adam(m.parameters(), 1e-3)
x = torch.randn(bs, 1, 28, 28); y = torch.randint(0, 10, (bs,))
def step():
    opt.zero_grad(set_to_none=True); F.cross_entropy(m(x), y).backward(); opt.step()
t0 = time.perf_counter()
while time.perf_counter() - t0 < 0.5: step()
ts = []
for _ in range(iters):
    t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
ts.sort(); print(ts[len(ts) // 2] * 1e3)
'''

PEER = r'''
import sys, time, torch, torch.nn.functional as F
torch.set_num_threads(int(sys.argv[1]))
work, n, iters = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
a = torch.randn(n, n); b = torch.randn(n, n); w = torch.randn(n); bb = torch.randn(n)
fn = {"gemm": lambda: a @ b, "softmax": lambda: torch.softmax(a, -1),
      "layernorm": lambda: F.layer_norm(a, (n,), w, bb), "add": lambda: a + b}[work]
t0 = time.perf_counter()
while time.perf_counter() - t0 < 0.5: fn()   # warm up: the first fraction of a second runs slow here
ts = []
for _ in range(iters):
    t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
ts.sort(); print(ts[len(ts) // 2] * 1e3)
'''


def iters_for(work, n):
    return 5 if (work == "gemm" and n >= 2048) else 20


def best_peer(script, args):
    """The peer's best median time over the (OPENBLAS_NUM_THREADS, torch threads) configurations."""
    best = None
    for blas, th in ((1, 1), (1, 2), (2, 2)):
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env["OPENBLAS_NUM_THREADS"] = str(blas)
        out = subprocess.run([sys.executable, "-c", script, str(th)] + [str(a) for a in args],
                             env=env, capture_output=True, text=True, check=True).stdout
        ms = float(out.strip().splitlines()[-1])
        if best is None or ms < best[0]:
            best = (ms, f"blas={blas},torch={th}")
    return best


def peer_ms(work, n):
    return best_peer(PEER, [work, n, iters_for(work, n)])


def ours_json(cmd, args):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(cmd.split() + args + ["--json", f.name], check=True, capture_output=True, text=True)
        return json.load(open(f.name))


def ours_ms(cmd, work, n):
    return ours_json(cmd, ["bench", work, "--size", str(n), "--iters", str(iters_for(work, n))])["ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hpcengine", default="dotnet src/HpcEngine.Cli/bin/Release/net10.0/hpcengine.dll")
    ap.add_argument("--only", choices=["kernels", "steps"])
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch
    print(f"peer: torch {torch.__version__}, {torch.__config__.show().count('OpenBLAS') and 'OpenBLAS' or 'BLAS?'}; rounds {args.rounds}")
    rows = []
    for model, bs, optname in (STEPS if args.only != "kernels" else []):
        iters = 50 if model == "mlp" else 10
        ours, theirs, cfg = [], [], ""
        for r in range(args.rounds):
            ours.append(ours_json(args.hpcengine, ["bench", "step", "--model", model, "--batch-size", str(bs), "--optimizer", optname, "--iters", str(iters)])["ms_per_step"])
            ms, cfg = best_peer(STEP_PEER, [model, bs, optname, iters])
            theirs.append(ms)
            print(f"  step {model} b{bs} {optname} round {r + 1}: ours {ours[-1]:.3f} ms, torch {ms:.3f} ms ({cfg})", flush=True)
        o, t = statistics.median(ours), statistics.median(theirs)
        rows.append({"workload": f"train step {model} {optname}", "size": bs, "ours_ms": round(o, 3), "torch_ms": round(t, 3), "unit": "ms/step",
                     "ours": round(o, 3), "torch": round(t, 3), "ratio": round(t / o, 3), "torch_config": cfg})
    for work, n in (KERNELS if args.only != "steps" else []):
        ours, theirs, cfg = [], [], ""
        for r in range(args.rounds):
            ours.append(ours_ms(args.hpcengine, work, n))
            ms, cfg = peer_ms(work, n)
            theirs.append(ms)
            print(f"  {work} {n} round {r + 1}: ours {ours[-1]:.3f} ms, torch {ms:.3f} ms ({cfg})", flush=True)
        o, t = statistics.median(ours), statistics.median(theirs)
        if work == "gemm":
            unit, fo, ft = "GFLOP/s", 2 * n ** 3 / o / 1e6, 2 * n ** 3 / t / 1e6
        else:
            nbytes = (3 if work == "add" else 2) * n * n * 4
            unit, fo, ft = "GB/s", nbytes / o / 1e6, nbytes / t / 1e6
        rows.append({"workload": work, "size": n, "ours_ms": round(o, 3), "torch_ms": round(t, 3), "unit": unit,
                     "ours": round(fo, 2), "torch": round(ft, 2), "ratio": round(t / o, 3), "torch_config": cfg})
    print(f"\n| workload | size | ours | torch | unit | speed ours/torch |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['size']} | {r['ours']} | {r['torch']} | {r['unit']} | {r['ratio']:.2f}x |")
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
