"""How far each steerer moves the stock model toward answering Yes, against the evaluation's null.

On the test half's 172 Truthfulness rows (the evaluation's Yes/No prompts, no persona), logratio =
log p(Yes) − log p(No) at "My choice:". Per steerer at ±c: D(±c) = mean over rows of logratio(±c) − logratio(0),
and its odd part Y = (D(+c) − D(−c))/2 with a 95 % bootstrap interval over dilemmas (both rows of a dilemma
drawn together). InnerPiSSA artifacts are read in their trained orientation (c times the stored sign, which undoes
the sign calibration: its probes read honesty, nothing here) at their own dose c* (eval_dilemmas.calibrate_dose,
the KL budget on the neutral set).
The null: the evaluation's K random directions (eval_dilemmas.null_steerers, --seed 0) at the doses a results.json
recorded, the same KL band. The persona line is the premise: the pairs' persona as the assistant's first words
before "My choice:" ("I always answer Yes. My choice:"), D for each and Y = (D_yes − D_no)/2. Under each steerer
the same persona effect P(c) = mean over rows of (logratio_yes(c) − logratio_no(c))/2 is read again at ±c, and
its odd part G = (P(+c) − P(−c))/2: how much of what the context writes the steerer scales, where Y reads what
it does without the context; the null's G_k give its p95 too.
Usage: python results/yes-persona/readout.py RESULTS.json [ARTIFACT ...]
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
import eval_dilemmas as ev  # noqa: E402
import harness  # noqa: E402
from yes_pairs import PERSONA  # noqa: E402

torch.set_grad_enabled(False)
model, tok = harness.load_model("embedded")
rows = [r for r in dilemmas.load_dilemmas("data", split="test") if r["labels"].get(dilemmas.TARGET, 0)]
dilemma = np.array([r["dilemma_idx"] for r in rows])
groups = [np.flatnonzero(dilemma == d) for d in np.unique(dilemma)]                 # [n_dilemmas] row indices
draws = np.random.default_rng(0).integers(0, len(groups), size=(2000, len(groups)))


def logratio(persona=""):
    """[rows] the Yes/No logratio of the evaluation's prompts, `persona` written before its "My choice:"."""
    prompts = [p.removesuffix("My choice:") + persona + "My choice:" for p in dilemmas.row_prompts(tok, rows)]
    return harness.score_yes_no(model, tok, prompts, nll=False)["logratio"]


base = logratio()


def odd_yes(plus, minus):
    """(D+, D−, Y, interval of Y, share of rows toward Yes at +) from the logratios at the two ends."""
    odd = ((plus - base) - (minus - base)) / 2                                       # [rows]
    per = np.array([odd[g].mean() for g in groups])                                 # [n_dilemmas]
    lo, hi = np.percentile(per[draws].mean(1), [2.5, 97.5])
    return (plus - base).mean(), (minus - base).mean(), odd.mean(), lo, hi, float((plus > base).mean())


def at(steerer, c, persona=""):
    with steerer.steer(c):
        return logratio(persona)


def persona_effect(steerer, c):
    """P(c): the persona's Yes-against-No effect under the steerer at c, mean over rows."""
    return np.mean(at(steerer, c, PERSONA.format("Yes")) - at(steerer, c, PERSONA.format("No"))) / 2


def line(name, c, stats, p95=None):
    dp, dm, y, lo, hi, share = stats
    ratio = f"  {abs(y) / p95:.1f}x" if p95 else ""
    print(f"{name:44s} {c:8.4g}  {dp:+7.3f}  {dm:+7.3f}  {y:+7.3f} [{lo:+.3f}, {hi:+.3f}]  {share:.2f}{ratio}", flush=True)


print(f"{len(rows)} test-half Truthfulness rows, mean logratio at c = 0 {base.mean():+.3f}")
print(f"{'steerer':44s} {'c':>8s}  {'D(+c)':>7s}  {'D(−c)':>7s}  {'Y [95 % interval]':>24s}  +Yes  |Y|/p95")
line("persona in the reply (premise)", 1, odd_yes(logratio(PERSONA.format("Yes")), logratio(PERSONA.format("No"))))
null, effects, gates = json.load(open(sys.argv[1]))["null"], [], []
for steerer, entry in zip(ev.null_steerers(model, tok, len(null), seed=0), null, strict=True):
    assert steerer.meta["seed"] == entry["seed"], "the null directions are not those of this results.json"
    effects.append(odd_yes(at(steerer, entry["coeff"]), at(steerer, -entry["coeff"])))
    gates.append((persona_effect(steerer, entry["coeff"]) - persona_effect(steerer, -entry["coeff"])) / 2)
    steerer.detach()
p95, g95 = (float(np.percentile(np.abs(x), 95)) for x in ([e[2] for e in effects], gates))
print(f"null (K = {len(effects)}): Y_k " + ", ".join(f"{e[2]:+.3f}" for e in effects) + f"; p95 of |Y_k| {p95:.3f}")
print("  G_k " + ", ".join(f"{g:+.3f}" for g in gates) + f"; p95 of |G_k| {g95:.3f}")
kl = ev.NeutralKL(model, tok, dilemmas.load_neutral(), 16)
for path in sys.argv[2:]:
    steerer = ev.load_steerer(model, path)
    c_star, kl_star = ev.calibrate_dose(lambda c: kl.at(steerer, c, ev.KL_BUDGET), ev.KL_BUDGET)
    o = getattr(steerer, "sign", 1)                                                   # trained orientation
    for c in (c_star, 1.0):
        line(f"{Path(path).name} (KL {kl_star:.3f} at c*)" if c == c_star else f"{Path(path).name} at c = 1",
             c, odd_yes(at(steerer, o * c), at(steerer, -o * c)), p95)
    p = [persona_effect(steerer, o * c) for c in (c_star, 0.0, -c_star)]
    print(f"  persona effect P at +c* / 0 / −c*: {p[0]:+.3f} / {p[1]:+.3f} / {p[2]:+.3f}; "
          f"G {(p[0] - p[2]) / 2:+.3f}, |G|/p95 {abs(p[0] - p[2]) / 2 / g95:.1f}x")
    steerer.detach()
