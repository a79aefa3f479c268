"""The planted model's premise, before InnerPiSSA is judged on it: the honest margin of Truthfulness rows with
no persona, and with the prompt baseline's honest / dishonest persona (InnerPiSSA's training wording, in the
system turn), on the stock and the planted model, per split. Usage: python check.py PLANTED_DIR"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
from baselines import prompt_system  # noqa: E402
from harness import honesty_margins, load_model, score_yes_no  # noqa: E402
from innerpissa import bootstrap_interval  # noqa: E402


def margins(model, tok, probes, c):
    score = lambda m, t, prompts: score_yes_no(m, t, prompts)["logratio"]  # noqa: E731
    return honesty_margins(model, tok, probes, score=score, system=prompt_system(c))


for name in ("embedded", sys.argv[1]):
    model, tok = load_model(name)
    for split in ("tune", "test"):
        probes = dilemmas.truth_probes(dilemmas.load_dilemmas("data", split=split))
        m = {c: margins(model, tok, probes, c) for c in (0, 1, -1)}
        lo, hi = bootstrap_interval((m[1] - m[-1]) / 2)
        print(f"{'planted' if name != 'embedded' else 'stock':8s} {split}: n={len(probes)}  margin none {m[0].mean():+.3f}"
              f"  honest persona {m[1].mean():+.3f}  dishonest {m[-1].mean():+.3f}  "
              f"(honest − dishonest)/2 {((m[1] - m[-1]) / 2).mean():+.3f} [{lo:+.3f}, {hi:+.3f}]", flush=True)
