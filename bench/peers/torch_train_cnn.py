#!/usr/bin/python3
"""PyTorch's peer of `hpcengine train --model cnn` (issue #20's epoch-time figure): the same network (2 × conv 3×3 +
batch norm + ReLU + max pool, 2 linear), Adam 1e-3 with a per-step cosine decay to 0, batch 128, the training set
shuffled each epoch, pixels normalised with the training set's mean 0.2860 and std 0.3530, on Fashion-MNIST's IDX
files. Prints each epoch's wall time and test accuracy, and a JSON line at the end:

    /usr/bin/python3 bench/peers/torch_train_cnn.py [--epochs 15] [--threads 2] [--data /usr/share/datasets/fashion-mnist]
"""
import argparse, gzip, json, math, os, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(d, split):
    x = idx(os.path.join(d, f"{split}-images-idx3-ubyte.gz")).astype(np.float32) / 255
    y = idx(os.path.join(d, f"{split}-labels-idx1-ubyte.gz")).astype(np.int64)
    return torch.from_numpy((x - 0.2860) / 0.3530).unsqueeze(1), torch.from_numpy(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    m = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    steps_per_epoch = math.ceil(len(xtr) / 128)
    total = steps_per_epoch * a.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    times, accs = [], []
    for epoch in range(a.epochs):
        m.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            b = perm[i:i + 128]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(xtr[b]), ytr[b]).backward()
            opt.step(); sched.step()
        times.append(time.perf_counter() - t0)
        m.eval()
        with torch.no_grad():
            acc = sum((m(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item() for i in range(0, len(xte), 1000)) / len(xte)
        accs.append(acc)
        print(f"epoch {epoch + 1}/{a.epochs}  {times[-1]:.1f}s  test accuracy {acc:.4f}", flush=True)
    print(json.dumps({"epoch_seconds": [round(t, 2) for t in times], "test_accuracy": accs,
                      "median_epoch_seconds": sorted(times)[len(times) // 2], "threads": a.threads}))


if __name__ == "__main__":
    main()
