"""The two sign rules compared on the tune half alone: split its Truthfulness dilemmas in two at random, orient each
adapter on one half at its dose (the tune rule: the side whose odd effect there is >= 0) and read the other half's
odd effect under that orientation and under the training's stored sign. Repeated over 1,000 seeded splits.

Per dilemma d, o_d = (x_d(+c*) - x_d(-c*)) / 2 in the training's orientation (x_d: the dilemma's mean row score,
eval_dilemmas.dilemma_scores); a half's effect is the mean o_d over its dilemmas (E up to the weighting of dilemmas
with one labelled row against two).
Usage: python results/sign-at-dose/split_half.py EVAL_DIR   (an evaluation with --split tune --sign-from training)
"""
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
import eval_dilemmas as ev  # noqa: E402

eval_dir = Path(sys.argv[1])
results = json.load(open(eval_dir / "results.json"))
rows = dilemmas.load_dilemmas(results["config"]["dilemmas"], split="tune")
logratios = defaultdict(dict)                                     # (method, coeff) -> {row idx: logratio}
for r in csv.DictReader(open(eval_dir / "rows.csv")):
    logratios[(r["method"], float(r["coeff"]))][int(r["idx"])] = float(r["logratio"])
rng = np.random.default_rng(0)
print("| adapter | c* | tune E (all 88) | B half E, tune rule: mean [share > 0] | B half E, training's sign: mean [share > 0] |")
print("|---|---|---|---|---|")
for name, s in results["summary"].items():
    c = s["coeff"]
    plus, minus = (ev.dilemma_scores(rows, [logratios[(name, k)][row["idx"]] for row in rows]) for k in (c, -c))
    odd = np.array([(plus[d] - minus[d]) / 2 for d in sorted(plus)])                   # [n_dilemmas]
    tune_rule, training = [], []
    for _ in range(1000):
        a = rng.permutation(odd.size) < odd.size // 2                                   # half A: orient; B: read
        sign = 1.0 if odd[a].mean() >= 0 else -1.0
        tune_rule.append(sign * odd[~a].mean())
        training.append(odd[~a].mean())
    tune_rule, training = np.array(tune_rule), np.array(training)
    print(f"| {name.split(':')[-1]} | {c:.4g} | {odd.mean():+.3f} | {tune_rule.mean():+.3f} [{(tune_rule > 0).mean():.2f}] "
          f"| {training.mean():+.3f} [{(training > 0).mean():.2f}] |")
