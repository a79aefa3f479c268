"""Does the gain planting hold, before InnerPiSSA is judged on it? On one split's Truthfulness rows (tune by default):
  - the persona-free honest margin of the gain-planted model against the model before stage 3 (the stage-2 model, or the
    stock model for a build with --steps 0), per dilemma;
  - the persona effect (honest − dishonest persona, InnerPiSSA's wording, /2) on the gain-planted model;
  - the known answer: the gain neuron's write scaled by 1.5 and 0.5, the persona-free margin's shift.
Every effect a mean over dilemmas with a 95 % bootstrap interval, in nats of the honest margin.
Usage: python results/planted-gain/check_gain.py BEFORE_STAGE_3 GAIN_DIR [tune|test]"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
from baselines import prompt_system  # noqa: E402
from harness import honesty_margins, load_model, score_yes_no  # noqa: E402
from innerpissa import bootstrap_interval, decoder_layers  # noqa: E402

torch.set_grad_enabled(False)
stage2, gain_dir = sys.argv[1], Path(sys.argv[2])
split = sys.argv[3] if len(sys.argv) > 3 else "tune"
rows = [r for r in dilemmas.load_dilemmas("data", split=split) if r["labels"].get(dilemmas.TARGET, 0)]
probes, ids = dilemmas.truth_probes(rows), np.array([r["dilemma_idx"] for r in rows])


def per_dilemma(values):
    return np.array([values[ids == d].mean() for d in np.unique(ids)])


def margins(model, tok, c):
    """Honest margins of every row with no persona (c = 0) or the prompt baseline's honest/dishonest one (c = ±1)."""
    score = lambda m, t, prompts: score_yes_no(m, t, prompts)["logratio"]  # noqa: E731
    return honesty_margins(model, tok, probes, score=score, system=prompt_system(c))


def interval(x):
    lo, hi = bootstrap_interval(x)
    return f"{x.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]"


model, tok = load_model(stage2)
before = margins(model, tok, 0)
model, tok = load_model(str(gain_dir))
m = {c: margins(model, tok, c) for c in (0, 1, -1)}
print(f"{split}, {len(np.unique(ids))} dilemmas: persona-free margin, gain model − {stage2} {interval(per_dilemma(m[0] - before))}")
print(f"persona effect (honest − dishonest)/2 {interval(per_dilemma((m[1] - m[-1]) / 2))}")
note = json.loads((gain_dir / "planted.json").read_text())
layer = note["training"]["layer"]
down = decoder_layers(model)[layer].mlp.down_proj.weight
j = note["gain"]["neurons"][str(layer)]
column = down[:, j].clone()
for k in (1.5, 0.5):
    down[:, j] = column * k
    print(f"gain neuron {j} of block {layer}, write x {k}: persona-free shift {interval(per_dilemma(margins(model, tok, 0) - m[0]))}")
down[:, j] = column
