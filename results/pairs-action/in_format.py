"""Does an adapter move, out of sample, the choice between two written actions, and by more than the null?

On the test half's Truthfulness dilemmas, built as action_pairs.py builds the tune half's (both reply templates),
g_i(c) = log p(honest reply | situation) − log p(other reply | situation), each reply's summed token log-probs
(the shared ending counts on both sides), a steerer at c. Δ(c) = mean_i g_i(c) − g_i(0) and the odd part
E(c) = (Δ(c) − Δ(−c))/2 with a 95 % bootstrap interval over dilemmas (a dilemma's two templates drawn together),
in each artifact's stored orientation. Artifacts at their c* from the evaluation (and InnerPiSSA ones at ±1, the
training's coefficient); the null: the evaluation's K random directions (eval_dilemmas.null_steerers, --seed 0) at
the doses its results.json records, the same KL band as every method ("-" instead of the file: no null).
Usage: python results/pairs-action/in_format.py EVAL_RESULTS.json|- ARTIFACT@C_STAR [ARTIFACT@C_STAR ...]
"""
import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import dilemmas  # noqa: E402
import eval_dilemmas  # noqa: E402
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402
from action_pairs import REPLIES, honest_first, reply  # noqa: E402

torch.set_grad_enabled(False)
model, tok = harness.load_model("embedded")
pairs = honest_first(dilemmas.load_dilemmas(split="test"))                          # [(honest row, other row)]
texts, n_reply = [], []
for template in REPLIES:
    for honest, other in pairs:
        for row in (honest, other):
            head = ip.chat(tok, row["dilemma_situation"])
            texts.append(head + reply(template, row))
            n_reply.append(len(ip.token_ids(tok, texts[-1])) - len(ip.token_ids(tok, head)))


def reply_logp(batch=16):
    """[len(texts)] summed log-probs of each text's reply tokens."""
    out = []
    for k in range(0, len(texts), batch):
        inputs = ip.tokenize(tok, texts[k:k + batch])
        logp = model(**inputs).logits[:, :-1].float().log_softmax(-1)                 # [b, S-1, vocab]
        got = logp.gather(-1, inputs["input_ids"][:, 1:, None])[..., 0]                 # [b, S-1]
        out += [float(got[j, -n:].sum()) for j, n in enumerate(n_reply[k:k + batch])]
    return np.array(out)


def gaps(steerer=None, c=0.0):
    """[dilemmas] g_i(c), the two templates averaged; without a steerer the model as it is."""
    with steerer.steer(c) if steerer is not None else contextlib.nullcontext():
        lp = reply_logp()
    return (lp[0::2] - lp[1::2]).reshape(len(REPLIES), len(pairs)).mean(0)


base = gaps()
draws = np.random.default_rng(0).integers(0, len(pairs), size=(2000, len(pairs)))


def odd_effect(steerer, c):
    """(Δ(+c), Δ(−c), E, its interval, share of dilemmas with E_i > 0)."""
    plus, minus = gaps(steerer, c) - base, gaps(steerer, -c) - base
    odd = (plus - minus) / 2
    lo, hi = np.percentile(odd[draws].mean(1), [2.5, 97.5])
    return plus.mean(), minus.mean(), odd.mean(), lo, hi, float((odd > 0).mean())


null = json.load(open(sys.argv[1]))["null"] if sys.argv[1] != "-" else []
effects = []
for steerer, entry in zip(eval_dilemmas.null_steerers(model, tok, len(null), seed=0), null, strict=True):
    assert steerer.meta["seed"] == entry["seed"], "the null directions are not those of this results.json"
    effects.append(odd_effect(steerer, entry["coeff"])[2])
    steerer.detach()
p95 = float(np.percentile(np.abs(effects), 95)) if effects else float("nan")
print(f"{len(pairs)} test-half Truthfulness dilemmas x {len(REPLIES)} reply templates; mean g(0) {base.mean():+.3f} nats "
      f"(the honest reply's log-prob minus the other's)")
print(f"null (K = {len(effects)}, {sys.argv[1]}): E_k " + ", ".join(f"{e:+.3f}" for e in effects) + f"; p95 of |E_k| {p95:.3f}")
print("artifact (stored orientation)                       c        Δ(+c)     Δ(−c)     E [95 % interval]          "
      "E_i > 0   |E| over null p95")
for spec in sys.argv[2:]:
    path, c_star = spec.rsplit("@", 1)
    steerer = eval_dilemmas.load_steerer(model, path)
    for c in (float(c_star), 1.0) if isinstance(steerer, ip.InnerPiSSA) else (float(c_star),):
        plus, minus, e, lo, hi, share = odd_effect(steerer, c)
        print(f"{path:50s} {c:7.4f}  {plus:+8.3f}  {minus:+8.3f}  {e:+8.3f} [{lo:+.3f}, {hi:+.3f}]   {share:.2f}      "
              f"{abs(e) / p95:.1f}x")
    steerer.detach()
