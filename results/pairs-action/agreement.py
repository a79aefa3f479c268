"""Do the base model's answers in the four formats agree, dilemma by dilemma?

For each test-half Truthfulness dilemma i: g_i(0), the honest reply's log-prob minus the other's, in in_format.py's
three formats (its --base-csv files: the written action after the situation, the written action after the
evaluation's Yes/No prompt, the letter naming it), and x_i, the evaluation's own Yes/No score at c = 0
(eval_dilemmas.dilemma_scores on the base rows of a rows.csv: the label-weighted log-ratio, so a yes-bias cancels).
Prints Pearson's r between every two formats with a 95 % bootstrap interval over dilemmas, and Spearman's ρ. A
one-token answer that reads the model's preference between the two actions correlates with the written formats.
No model is run. Usage: python results/pairs-action/agreement.py ROWS.csv ACTION.csv QUESTION.csv LETTER.csv
"""
import csv
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
import eval_dilemmas  # noqa: E402


def yes_no_base(rows_csv):
    """{dilemma_idx: x_i} at c = 0 from an evaluation's rows.csv."""
    lr = {int(r["idx"]): float(r["logratio"]) for r in csv.DictReader(open(rows_csv)) if r["method"] == "base"}
    rows = [r for r in dilemmas.load_dilemmas(split="test") if r["idx"] in lr]
    return eval_dilemmas.dilemma_scores(rows, [lr[r["idx"]] for r in rows])


def base_gaps(path):
    return {int(d): g for d, g in np.loadtxt(path, delimiter=",", skiprows=1)}


def ranks(x):
    return np.argsort(np.argsort(x))


formats = {"Yes/No (the evaluation)": yes_no_base(sys.argv[1])}
formats.update((name, base_gaps(path)) for name, path in zip(("action", "question", "letter"), sys.argv[2:5], strict=True))
ids = sorted(set.intersection(*(set(f) for f in formats.values())))
values = {name: np.array([f[i] for i in ids]) for name, f in formats.items()}
draws = np.random.default_rng(0).integers(0, len(ids), size=(2000, len(ids)))
print(f"{len(ids)} test-half Truthfulness dilemmas, the base model; mean per format: "
      + ", ".join(f"{name} {v.mean():+.3f}" for name, v in values.items()))
for (a, x), (b, y) in itertools.combinations(values.items(), 2):
    r = np.corrcoef(x, y)[0, 1]
    lo, hi = np.percentile([np.corrcoef(x[d], y[d])[0, 1] for d in draws], [2.5, 97.5])
    rho = np.corrcoef(ranks(x), ranks(y))[0, 1]
    print(f"{a:24s} ~ {b:9s}  r {r:+.2f} [{lo:+.2f}, {hi:+.2f}]  Spearman {rho:+.2f}")
