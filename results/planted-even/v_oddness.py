"""How odd is the planted direction's own effect? Stage 1 of planted.py (v at block 14, seed 0, tune half) fitted with
the oracle loss plus u · mean_rows e² (e the log-ratio change +v and −v share; u = 0 is planted.py's default) and the
KL bound tau, then ±s·v added at block 14's output at every position of the tune half's persona-free dilemma prompts
(all 330 rows), no persona: mean |odd|, mean |even|, the odd share and the common shift, as eval_dilemmas defines them.
Usage: python results/planted-even/v_oddness.py 0,0.1 1,0.1 4,0.1 4,0.4 1,0.4 --scales 1 2   (from the repository root)
Ran at b760029, which scored each ±s·v twice (once for odd_even, once for common_shift).
"""
import argparse
import sys

import numpy as np

sys.path.insert(0, ".")
import dilemmas, planted  # noqa: E402
from eval_dilemmas import common_shift, odd_even  # noqa: E402
from harness import load_model, score_yes_no  # noqa: E402
from innerpissa import decoder_layers  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("specs", nargs="+", help="u,tau pairs")
p.add_argument("--scales", type=float, nargs="+", default=[1.0, 2.0])
a = p.parse_args()
model, tok = load_model("embedded")
rows_t, honest, _ = planted.tune_rows()
prompts = dilemmas.row_prompts(tok, dilemmas.load_dilemmas(split="tune"))
block = decoder_layers(model)[14]


def logratio(v):
    hook = block.register_forward_hook(lambda m, args, out: out + v if not isinstance(out, tuple) else (out[0] + v, *out[1:]))
    try:
        return np.asarray(score_yes_no(model, tok, prompts, nll=False)["logratio"])
    finally:
        hook.remove()


print(f"# python results/planted-even/v_oddness.py {' '.join(a.specs)} --scales {' '.join(map(str, a.scales))}")
print("u | tau | s | |v| | stage-1 honest margin at +v / -v | mean|odd| | mean|even| | odd share | common shift")
for spec in a.specs:
    u, tau = map(float, spec.split(","))
    v, stats = planted.honesty_direction(model, tok, rows_t, honest, 14, even_weight=u, kl_tau=tau, progress=False)
    y0, fin = logratio(0 * v), stats["final"]
    for s in a.scales:
        plus, minus = logratio(s * v), logratio(-s * v)
        (odd, even, share), (shift, _) = odd_even(y0, plus, minus), common_shift(y0, plus, minus)
        print(f"{u:g} | {tau:g} | {s:g} | {v.norm():.2f} | {fin['m+1']:+.3f} / {fin['m-1']:+.3f} | {odd:.3f} | {even:.3f} "
              f"| {share:.2f} | {shift:+.3f}", flush=True)
