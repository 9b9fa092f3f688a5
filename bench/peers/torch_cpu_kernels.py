#!/usr/bin/python3
"""Side-by-side CPU kernel figures: HpcEngine (`hpcengine bench`) against PyTorch (Debian python3-torch + OpenBLAS).

    /usr/bin/python3 bench/peers/torch_cpu_kernels.py [--rounds 3] [--hpcengine "dotnet path/to/hpcengine.dll"]

Build ours first: dotnet build -c Release src/HpcEngine.Cli. The peer runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset (so OpenBLAS picks the machine's best kernels) under (OPENBLAS_NUM_THREADS, torch threads) = (1,1), (1,2),
(2,2), keeping its best; see ../shared/design/ANCHORS.md. Rounds interleave ours and theirs so that drift of the
machine hits both alike; each figure is the median over rounds of each side's median time. Prints a table of
ours / theirs and writes it as JSON with --json.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

WORKLOADS = [("gemm", 1024), ("gemm", 2048), ("softmax", 4096), ("layernorm", 4096), ("add", 4096)]

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


def peer_ms(work, n):
    best = None
    for blas, th in ((1, 1), (1, 2), (2, 2)):
        env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env["OPENBLAS_NUM_THREADS"] = str(blas)
        out = subprocess.run([sys.executable, "-c", PEER, str(th), work, str(n), str(iters_for(work, n))],
                             env=env, capture_output=True, text=True, check=True).stdout
        ms = float(out.strip().splitlines()[-1])
        if best is None or ms < best[0]:
            best = (ms, f"blas={blas},torch={th}")
    return best


def ours_ms(cmd, work, n):
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run(cmd.split() + ["bench", work, "--size", str(n), "--iters", str(iters_for(work, n)), "--json", f.name],
                       check=True, capture_output=True, text=True)
        return json.load(open(f.name))["ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hpcengine", default="dotnet src/HpcEngine.Cli/bin/Release/net10.0/hpcengine.dll")
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch
    print(f"peer: torch {torch.__version__}, {torch.__config__.show().count('OpenBLAS') and 'OpenBLAS' or 'BLAS?'}; rounds {args.rounds}")
    rows = []
    for work, n in WORKLOADS:
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
    print(f"\n| workload | size | ours | torch | unit | ours/torch |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['size']} | {r['ours']} | {r['torch']} | {r['unit']} | {r['ratio']:.2f}x |")
    if args.json:
        json.dump(rows, open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
