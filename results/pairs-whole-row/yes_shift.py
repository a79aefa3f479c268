"""Per adapter: the mean change of the Yes/No logratio over every test row at each applied coefficient (no label),
and the share of rows moved toward Yes. A pure Yes-against-No axis moves every row the same way.
Usage: python results/pairs-whole-row/yes_shift.py EVAL_DIR/rows.csv"""
import collections
import csv
import sys

import numpy as np

by = collections.defaultdict(dict)
for r in csv.DictReader(open(sys.argv[1])):
    by[(r["method"], float(r["coeff"]))][int(r["idx"])] = float(r["logratio"])
base = by[("base", 0.0)]
for (method, c), lr in sorted(by.items()):
    if c == 0.0:
        continue
    d = np.array([lr[i] - base[i] for i in base])
    print(f"{method} c={c:+.4f}: mean Δlogratio {d.mean():+.3f}, mean |Δ| {np.abs(d).mean():.3f}, "
          f"rows toward Yes {(d > 0).mean():.2f} (n={d.size})")
