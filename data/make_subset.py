#!/usr/bin/python3
"""Writes the embedded default dataset: the first 10,000 training and first 2,000 test images of Fashion-MNIST,
as gzip IDX files in the original format, from the Debian package dataset-fashion-mnist.

    /usr/bin/python3 data/make_subset.py [/usr/share/datasets/fashion-mnist]
"""
import gzip, os, struct, sys

src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
here = os.path.dirname(os.path.abspath(__file__))


def subset(name, count):
    with gzip.open(os.path.join(src, name), "rb") as f:
        data = f.read()
    magic = data[:4]
    rank = magic[3]
    dims = list(struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank]))
    per = 1
    for d in dims[1:]:
        per *= d
    dims[0] = count
    out = magic + struct.pack(">" + "I" * rank, *dims) + data[4 + 4 * rank:4 + 4 * rank + count * per]
    # mtime=0 keeps the gzip bytes reproducible
    with open(os.path.join(here, name), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as g:
        g.write(out)


subset("train-images-idx3-ubyte.gz", 10000)
subset("train-labels-idx1-ubyte.gz", 10000)
subset("t10k-images-idx3-ubyte.gz", 2000)
subset("t10k-labels-idx1-ubyte.gz", 2000)
print("wrote the subset to", here)
