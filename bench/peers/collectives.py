#!/usr/bin/python3
"""Allreduce between processes of one host, side by side: HpcEngine, gloo (torch.distributed) and OpenMPI.

    /usr/bin/python3 bench/peers/collectives.py [--ranks 2 4] [--sizes 4096 1048576 16777216 67108864]
        [--transport tcp|shm] [--hpcengine "dotnet src/HpcEngine.Cli/bin/Release/net10.0/hpcengine.dll"]

--transport tcp (default): ours over loopback TCP (HPCENGINE_TRANSPORT=tcp), OpenMPI with `--mca btl self,tcp`.
--transport shm: ours over shared memory (HPCENGINE_TRANSPORT=shm), OpenMPI with its default transports (vader, its
shared-memory btl). gloo has only TCP on the CPU; it runs in both modes when torch is installed, else "n/a".

Build ours first (dotnet build -c Release src/HpcEngine.Cli); the MPI peer is compiled here with mpicc. Each figure is
the mean time per allreduce of float32 data on the slowest rank; busbw = bytes/time · 2(n−1)/n (nccl-tests).
"""
import argparse, json, os, subprocess, sys, tempfile, time

GLOO = r'''
import os, sys, time, torch, torch.distributed as dist, torch.multiprocessing as mp
def run(rank, n, port, sizes):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=n)
    for b in sizes:
        t = torch.zeros(max(1, b // 4))
        iters = 5 if b >= 16 << 20 else 20
        for _ in range(2): dist.all_reduce(t)
        dist.barrier(); s = time.perf_counter()
        for _ in range(iters): dist.all_reduce(t)
        us = torch.tensor([(time.perf_counter() - s) / iters * 1e6])
        dist.all_reduce(us, op=dist.ReduceOp.MAX)
        if rank == 0: print(b, float(us), flush=True)
    dist.destroy_process_group()
if __name__ == "__main__":
    n, port = int(sys.argv[1]), int(sys.argv[2])
    mp.spawn(run, args=(n, port, [int(x) for x in sys.argv[3:]]), nprocs=n)
'''


def parse_pairs(text):
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[int(parts[0])] = float(parts[1])
            except ValueError:
                pass
    return out


def ours(cmd, n, sizes, transport):
    res = {}
    env = dict(os.environ, HPCENGINE_TRANSPORT=transport)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        for b in sizes:
            subprocess.run(cmd.split() + ["launch", "--nproc-per-node", str(n), "--", "hpcengine", "bench", "collectives", "--op", "allreduce",
                                          "--min-bytes", str(b), "--max-bytes", str(b), "--iters", "5" if b >= 16 << 20 else "2000", "--warmup", "2" if b >= 16 << 20 else "2000", "--warmup-seconds", "1", "--json", f.name],
                           check=True, capture_output=True, text=True, timeout=600, env=env)
            r = json.load(open(f.name))["results"][0]
            res[b] = r["time_us"]
    return res


def gloo(n, sizes, port):
    try:
        import torch  # noqa: F401  (only to know whether the peer can run)
    except ImportError:
        print("gloo: torch is not installed (Debian python3-torch); its column is n/a", file=sys.stderr)
        return {}
    # torch.multiprocessing.spawn re-imports the main module, so the peer runs from a file, not `python -c`.
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(GLOO)
    try:
        out = subprocess.run([sys.executable, f.name, str(n), str(port)] + [str(s) for s in sizes], capture_output=True, text=True, timeout=900)
        return parse_pairs(out.stdout)
    finally:
        os.unlink(f.name)


def mpi(n, sizes, transport):
    exe = os.path.join(tempfile.gettempdir(), "hpcengine_mpi_allreduce")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_allreduce.c")
    subprocess.run(["mpicc", "-O2", "-o", exe, src], check=True)
    out = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(n)] + (["--mca", "btl", "self,tcp"] if transport == "tcp" else []) + [exe] + [str(s) for s in sizes],
                         capture_output=True, text=True, timeout=900)
    return parse_pairs(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 1 << 20, 16 << 20, 64 << 20])
    ap.add_argument("--hpcengine", default="dotnet src/HpcEngine.Cli/bin/Release/net10.0/hpcengine.dll")
    ap.add_argument("--transport", choices=["tcp", "shm"], default="tcp")
    ap.add_argument("--json")
    a = ap.parse_args()
    rows = []
    for n in a.ranks:
        o = ours(a.hpcengine, n, a.sizes, a.transport)
        g = gloo(n, a.sizes, 29600 + n)
        m = mpi(n, a.sizes, a.transport)
        for b in a.sizes:
            f = 2 * (n - 1) / n
            bw = lambda us: b / (us * 1e-6) / 1e9 * f if us else float("nan")
            rows.append({"transport": a.transport, "ranks": n, "bytes": b, "ours_us": o.get(b), "gloo_us": g.get(b), "mpi_us": m.get(b),
                         "ours_busbw": bw(o.get(b)), "gloo_busbw": bw(g.get(b)), "mpi_busbw": bw(m.get(b))})
            print(f"n={n} {b} B: ours {o.get(b)} us, gloo {g.get(b)} us, openmpi {m.get(b)} us", flush=True)
    print("\n| ranks | bytes | ours ms | gloo ms | OpenMPI ms | ours busbw GB/s | gloo busbw | OpenMPI busbw | ours/gloo (speed) | ours/OpenMPI (speed) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ms = lambda us: f"{us / 1e3:.3f}" if us else "n/a"
    sp = lambda x, y: f"{y / x:.2f}x" if x and y else "n/a"
    for r in rows:
        print(f"| {r['ranks']} | {r['bytes']} | {ms(r['ours_us'])} | {ms(r['gloo_us'])} | {ms(r['mpi_us'])} | "
              f"{r['ours_busbw']:.3f} | {r['gloo_busbw']:.3f} | {r['mpi_busbw']:.3f} | {sp(r['ours_us'], r['gloo_us'])} | {sp(r['ours_us'], r['mpi_us'])} |")
    if a.json:
        json.dump(rows, open(a.json, "w"), indent=2)


if __name__ == "__main__":
    main()
