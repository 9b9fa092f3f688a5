#!/usr/bin/env python3
"""Writes MNIST-format IDX files as a class-per-folder PNG tree (OUT/train/CLASS/N.png, OUT/test/CLASS/N.png), the
input `hpcengine data prepare --source images:OUT` reads. Standard library only (zlib PNG encoder, greyscale 8-bit),
so it runs wherever python3 does. Used by bench/data/pipeline.sh for the image-preparation throughput figures.

usage: idx_to_png_tree.py IDX_DIR OUT [--limit N]
"""
import gzip, os, struct, sys, zlib

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path):
    opener = gzip.open if os.path.exists(path + ".gz") else open
    with opener(path + ".gz" if os.path.exists(path + ".gz") else path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def png(width, height, pixels):
    raw = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def main():
    src, out = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[sys.argv.index("--limit") + 1]) if "--limit" in sys.argv else None
    for split, (images, labels) in FILES.items():
        (n, h, w), px = read_idx(os.path.join(src, images))
        _, lb = read_idx(os.path.join(src, labels))
        n = min(n, limit) if limit else n
        for i in range(n):
            d = os.path.join(out, split, str(lb[i]))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{i:05d}.png"), "wb") as f:
                f.write(png(w, h, px[i * h * w:(i + 1) * h * w]))
        print(f"{split}: {n} images", file=sys.stderr)


if __name__ == "__main__":
    main()
