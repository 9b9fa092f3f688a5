#!/usr/bin/env python3
"""The `hpcengine bench loader` peer: PyTorch's DataLoader over Fashion-MNIST in memory, shuffled, batch 128,
x/255 then (x - 0.2860) / 0.3530 per batch (vectorised in the collate function, the fastest form a PyTorch user
would write; num_workers 0 as the data is in memory). Prints the median epoch's samples/s as JSON.

usage: /usr/bin/python3 bench/peers/loader.py [FASHION_MNIST_DIR] [EPOCHS]"""
import gzip, json, os, statistics, sys, time
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

d = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 15


def idx(name):
    with gzip.open(os.path.join(d, name + ".gz")) as f:
        data = f.read()
    n = data[3]
    dims = np.frombuffer(data[4:4 + 4 * n], dtype=">u4")
    return np.frombuffer(data[4 + 4 * n:], dtype=np.uint8).reshape(dims)


x = torch.from_numpy(idx("train-images-idx3-ubyte").copy()).unsqueeze(1)
y = torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))


def collate(batch):
    xs = torch.stack([b[0] for b in batch]).float().div_(255).sub_(0.2860).div_(0.3530)
    return xs, torch.stack([b[1] for b in batch])


loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True, collate_fn=collate,
                    generator=torch.Generator().manual_seed(1))
times = []
for epoch in range(epochs + 1):
    t = time.perf_counter()
    for xb, yb in loader:
        pass
    if epoch > 0:
        times.append(time.perf_counter() - t)
m = statistics.median(times)
print(json.dumps({"peer": f"torch {torch.__version__} DataLoader", "threads": torch.get_num_threads(),
                  "samples": len(y), "epoch_seconds": m, "samples_per_second": len(y) / m}))
