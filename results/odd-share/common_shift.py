"""How much of a method's even part is one shift of every row toward Yes (or No)?

Per row, d± = logratio(±c*) − logratio(0); odd = (d₊ − d₋)/2, even = (d₊ + d₋)/2, and the evaluation's
odd share = mean|odd| / (mean|odd| + mean|even|) over all rows (eval_dilemmas.odd_even). The common shift is
the mean of even over the rows: a move toward Yes (or No) that both signs make, which the Truthfulness score
cancels by construction (each dilemma's two rows carry opposite labels). Printed per method: mean|odd|,
mean|even|, the common shift and the share of rows whose even part has its sign, the odd share as the
evaluation computes it, and the same with the common shift taken out of even (mean|even − mean even|).
A reading of rows.csv (no model), not the protocol: the verdicts use the evaluation's odd share.
Usage: python results/odd-share/common_shift.py ROWS.csv [ROWS.csv ...]
"""
import csv
import sys
from collections import defaultdict

import numpy as np


def changes(path):
    """{method: (d₊, d₋) arrays over the rows scored at c = 0 and at ±c*} (the smallest |c| of each sign)."""
    rows = list(csv.DictReader(open(path)))
    base = {r["idx"]: float(r["logratio"]) for r in rows if r["method"] == "base"}
    scored = defaultdict(lambda: defaultdict(dict))                     # method → row → c → logratio
    for r in rows:
        if r["method"] != "base" and not r["method"].startswith("null"):
            scored[r["method"]][r["idx"]][float(r["coeff"])] = float(r["logratio"])
    out = {}
    for method, by_row in scored.items():
        doses = {c for cs in by_row.values() for c in cs}
        plus, minus = min(c for c in doses if c > 0), max(c for c in doses if c < 0)
        idx = [i for i, cs in by_row.items() if i in base and plus in cs and minus in cs]
        out[method] = tuple(np.array([by_row[i][c] - base[i] for i in idx]) for c in (plus, minus))
    return out


def main(paths):
    for path in paths:
        print(f"## {path}")
        print("method | rows | mean|odd| | mean|even| | common shift (rows its way) | odd share | without the common shift")
        for method, (d_plus, d_minus) in changes(path).items():
            odd, even = np.abs(d_plus - d_minus) / 2, (d_plus + d_minus) / 2
            spread = np.abs(even - even.mean()).mean()
            its_way = np.mean(np.sign(even) == np.sign(even.mean()))
            print(f"{method} | {len(odd)} | {odd.mean():.3f} | {np.abs(even).mean():.3f} | {even.mean():+.3f} ({its_way:.2f}) | "
                  f"{odd.mean() / (odd.mean() + np.abs(even).mean()):.2f} | {odd.mean() / (odd.mean() + spread):.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
