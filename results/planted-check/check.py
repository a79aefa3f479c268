"""The planted model's premise, before InnerPiSSA is judged on it: the honest margin of Truthfulness rows with
no persona, and with the prompt baseline's honest / dishonest persona (InnerPiSSA's training wording, in the
system turn), per split. The persona effect (honest − dishonest)/2 is averaged per dilemma (its two rows, so a
Yes/No bias cancels, as in the evaluation's score) and given a 95 % bootstrap interval over dilemmas.
Usage: python check.py MODEL [MODEL ...]   (e.g. embedded runs/planted)"""
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


def per_dilemma(values, ids):
    """Mean of `values` over each dilemma's rows, [n_dilemmas]."""
    return np.array([values[ids == d].mean() for d in np.unique(ids)])


for name in sys.argv[1:]:
    model, tok = load_model(name)
    for split in ("tune", "test"):
        rows = [r for r in dilemmas.load_dilemmas("data", split=split) if r["labels"].get(dilemmas.TARGET, 0)]
        probes, ids = dilemmas.truth_probes(rows), np.array([r["dilemma_idx"] for r in rows])
        m = {c: margins(model, tok, probes, c) for c in (0, 1, -1)}
        effect = per_dilemma((m[1] - m[-1]) / 2, ids)
        lo, hi = bootstrap_interval(effect)
        print(f"{name} {split}: {len(rows)} rows, {len(effect)} dilemmas; honest margin: no persona {m[0].mean():+.3f}, "
              f"honest persona {m[1].mean():+.3f}, dishonest {m[-1].mean():+.3f}; persona effect "
              f"(honest − dishonest)/2 {effect.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]", flush=True)
