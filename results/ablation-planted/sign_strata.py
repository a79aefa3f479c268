"""How much of the sign calibration's interval is the probes' Yes/No mix? The same per-probe gaps, two bootstraps.

innerpissa.sign_report reads g = margin(+1) − margin(−1) per probe (margin: the Yes/No log-ratio toward the probe's
honest answer) and, before 9b79967, bootstrapped the mean of g over all probes pooled. A change of the Yes/No balance by
b moves g by +b on a probe whose honest answer is Yes and by −b on one whose answer is No. Half the probes of each
source are each kind, so b cancels in the mean; it does not cancel in a bootstrap that draws probes regardless of kind,
where each draw's share of Yes probes varies and b² widens the interval. Here, per adapter, in the adapter's raw
orientation (before its recorded sign): the pooled mean and that kind-blind interval, the interval of a bootstrap that
draws the Yes and the No probes of each source separately (the same pooled mean; sign_report since 9b79967 draws the
same way, its groups in another order), and b, half the mean gap between Yes and No probes. 2,000 draws, seed 0.

Usage (cwd: the repository root):
    python results/ablation-planted/sign_strata.py PLANTED_DIR PROBES.csv ... -- NAME=ARTIFACT.safetensors[@C] ...
(@C: the gaps at c = ±C instead of ±1)
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # the repository root
import harness  # noqa: E402
import innerpissa as ip  # noqa: E402

N_BOOT = 2000


def gaps(model, tok, adapter, probes, c=1.0):
    margins = harness.probe_margins(model, tok)
    with adapter.steer(c):
        plus = margins(probes)
    with adapter.steer(-c):
        return plus - margins(probes)


torch.set_grad_enabled(False)
split = sys.argv.index("--")
planted, paths, adapters = sys.argv[1], sys.argv[2:split], dict(a.split("=", 1) for a in sys.argv[split + 1:])
adapters = {name: (spec.split("@") + ["1"])[:2] for name, spec in adapters.items()}   # PATH[@c]: gaps at ±c
model, tok = harness.load_model(planted)
sources = harness.probe_sources(paths)
print(f"{'adapter':16s} {'sign':>4s} {'raw gap':>8s} {'pooled bootstrap':>20s} {'by Yes/No kind':>20s} {'b':>7s}")
for name, (path, c) in adapters.items():
    adapter = ip.InnerPiSSA.load(model, path)
    sign = ip.load_artifact(path)[1]["sign"]
    g, groups, kinds = [], [], []
    for k, probes in enumerate(sources.values()):
        x = sign * gaps(model, tok, adapter, probes, float(c))                 # raw orientation: undo the recorded sign
        yes = np.array([p["honest_answer"] == "Yes" for p in probes])
        g.append(x)
        groups += [x[yes], x[~yes]]
        kinds += [f"{k}:{0 if y else 1}" for y in yes]      # sorted: source k's Yes, then its No (the draws' order)
    adapter.detach()
    g = np.concatenate(g)
    pooled, strata = ip.bootstrap_interval(g, N_BOOT), ip.bootstrap_interval(g, N_BOOT, strata=kinds)
    b = np.mean([grp.mean() for grp in groups[0::2]]) - np.mean([grp.mean() for grp in groups[1::2]])
    print(f"{name:16s} {sign:+4d} {g.mean():+8.3f} [{pooled[0]:+.3f}, {pooled[1]:+.3f}]    "
          f"[{strata[0]:+.3f}, {strata[1]:+.3f}]    {b / 2:+7.3f}")
print(f"n = {len(g)} probes ({', '.join(f'{k}: {len(v)}' for k, v in sources.items())})")
