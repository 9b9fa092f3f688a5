#!/usr/bin/env python3
"""Writes the tabular benchmark set: id, x1 ~ N(0,1), x2 ~ U(0,10) with 10 % missing, color in {red, green, blue}
with 5 % missing (NA), and label yes when x1 + (1 if red else -0.5) + 0.3 N(0,1) > 0 — the relation the tests'
generator uses. Prints the majority-class share to stderr.

usage: make_table.py OUT.csv [ROWS] [SEED]"""
import math, random, sys

out, rows = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10000
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
yes = 0
with open(out, "w") as f:
    f.write("id,x1,x2,color,label\n")
    for i in range(rows):
        x1, x2, color = rng.gauss(0, 1), rng.uniform(0, 10), rng.choice(["red", "green", "blue"])
        label = x1 + (1 if color == "red" else -0.5) + 0.3 * rng.gauss(0, 1) > 0
        yes += label
        x2s = "" if rng.random() < 0.1 else f"{x2:.3f}"
        cs = "NA" if rng.random() < 0.05 else color
        f.write(f"{i},{x1:.4f},{x2s},{cs},{'yes' if label else 'no'}\n")
print(f"majority class share {max(yes, rows - yes) / rows:.4f}", file=sys.stderr)
