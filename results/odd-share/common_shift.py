"""How much of a method's even part is one shift of every row toward Yes (or No)?

Per row, d± = logratio(±c*) − logratio(0); odd = (d₊ − d₋)/2, even = (d₊ + d₋)/2, and the evaluation's
odd share = mean|odd| / (mean|odd| + mean|even|) over all rows (eval_dilemmas.odd_even). The common shift is
the mean of even over the rows: a move toward Yes (or No) that both signs make, which the Truthfulness score
cancels by construction (each dilemma's two rows carry opposite labels). Printed per method: mean|odd|,
mean|even|, the common shift and the share of rows whose even part has its sign, the odd share as the
evaluation computes it, and the same with the common shift taken out of even (eval_dilemmas.common_shift,
which results.json holds for runs after it). A reading of rows.csv (no model), not the protocol.
Usage: python results/odd-share/common_shift.py ROWS.csv [ROWS.csv ...]
"""
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from eval_dilemmas import common_shift, odd_even  # noqa: E402


def logratios(path):
    """{method: (at c = 0, at +c*, at −c*) arrays over the rows scored at all three} (±c*: the smallest |c|
    of each sign; the null's rows left out)."""
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
        out[method] = (np.array([base[i] for i in idx]), *(np.array([by_row[i][c] for i in idx]) for c in (plus, minus)))
    return out


def main(paths):
    for path in paths:
        print(f"## {path}")
        print("method | rows | mean|odd| | mean|even| | common shift (rows its way) | odd share | without the common shift")
        for method, (ref, plus, minus) in logratios(path).items():
            odd, even, share = odd_even(ref, plus, minus)
            shift, without = common_shift(ref, plus, minus)
            its_way = np.mean(np.sign(plus + minus - 2 * ref) == np.sign(shift))
            print(f"{method} | {len(ref)} | {odd:.3f} | {even:.3f} | {shift:+.3f} ({its_way:.2f}) | {share:.2f} | {without:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
